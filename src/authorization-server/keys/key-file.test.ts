import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { KeyFileError, readKeyFile, type StoredKeys, writeKeyFile } from './key-file.ts';
import { generateSigningKey } from './signing-key.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-key-file-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const fileIn = () => path.join(dir, `case-${++files}`, 'keys.json');
const read = (file: string) => readKeyFile(file, { now: 1000, retireAfterSeconds: 60 });

async function stored(): Promise<StoredKeys> {
  const current = (await generateSigningKey('ES256')) as StoredKeys['idTokenKey'];
  const next = (await generateSigningKey('ES256')) as StoredKeys['idTokenKey'];
  const retired = (await generateSigningKey('ES256')) as StoredKeys['idTokenKey'];
  return {
    ring: [
      { jwk: next, state: 'next', createdAt: 500 },
      { jwk: retired, state: 'retired', createdAt: 1, activatedAt: 2, retiredAt: 500, retireAt: 1500 },
      { jwk: current, state: 'current', createdAt: 3, activatedAt: 500 },
    ],
    idTokenKey: (await generateSigningKey('RS256')) as StoredKeys['idTokenKey'],
    cookieKeys: ['cookie-key-1'],
  };
}

describe('keys.json', () => {
  test('is written owner-only in an owner-only folder, by rename, and reads back the same ring', async () => {
    const file = fileIn();
    const keys = await stored();
    writeKeyFile(file, keys);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(path.dirname(file)).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(path.dirname(file)), ['keys.json'], 'no temporary file is left');
    const back = read(file);
    assert.equal(back?.migrated, false);
    const byKid = (k: StoredKeys) => Object.fromEntries(k.ring.map((key) => [key.jwk.kid, key]));
    assert.deepEqual(byKid(back!.keys), byKid(keys));
    assert.deepEqual(back!.keys.idTokenKey, keys.idTokenKey);
    assert.deepEqual(back!.keys.cookieKeys, keys.cookieKeys);
  });

  test('keeps format 1 readable: signingKeys has the current ES256 key first, the ID-token key last', async () => {
    const file = fileIn();
    const keys = await stored();
    writeKeyFile(file, keys);
    const raw = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(raw.version, 2);
    const current = keys.ring.find((key) => key.state === 'current')!;
    assert.equal(raw.signingKeys[0].kid, current.jwk.kid);
    assert.equal(raw.signingKeys.at(-1).kid, keys.idTokenKey.kid);
    assert.deepEqual(raw.cookieKeys, ['cookie-key-1']);
  });

  test('a missing file is undefined (first start)', () => {
    assert.equal(read(fileIn()), undefined);
  });

  test('a format-1 file migrates: its ES256 key becomes current, nothing else changes', async () => {
    const file = fileIn();
    const es = await generateSigningKey('ES256');
    const rs = await generateSigningKey('RS256');
    mkdirSync(path.dirname(file), { recursive: true });
    // What keys.ts wrote before rings existed.
    writeFileSync(file, JSON.stringify({ signingKeys: [es, rs], cookieKeys: ['old-cookie'] }), {
      mode: 0o600,
    });
    const back = read(file);
    assert.equal(back?.migrated, true);
    assert.deepEqual(
      back!.keys.ring.map((key) => [key.jwk.kid, key.state, key.activatedAt]),
      [[es.kid, 'current', 1000]],
    );
    assert.equal(back!.keys.idTokenKey.kid, rs.kid);
    assert.deepEqual(back!.keys.cookieKeys, ['old-cookie'], 'sessions survive the migration');
  });

  test('a format-1 file with a second ES256 key keeps it published as retired', async () => {
    const file = fileIn();
    const [a, b, rs] = [
      await generateSigningKey('ES256'),
      await generateSigningKey('ES256'),
      await generateSigningKey('RS256'),
    ];
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify({ signingKeys: [a, b, rs], cookieKeys: ['c'] }));
    const ring = read(file)!.keys.ring;
    assert.deepEqual(
      ring.map((key) => [key.jwk.kid, key.state, key.retireAt]),
      [
        [a.kid, 'current', undefined],
        [b.kid, 'retired', 1060],
      ],
    );
  });

  test('damage stops the start with a message naming the file and what to do', async () => {
    const keys = await stored();
    const good = () => {
      const file = fileIn();
      writeKeyFile(file, keys);
      return { file, raw: JSON.parse(readFileSync(file, 'utf8')) };
    };
    const cases: Array<
      [string, (raw: Record<string, unknown> & { signingKeys: Array<Record<string, unknown>> }) => unknown]
    > = [
      ['not JSON', () => '{"signingKeys": ['],
      ['no cookie keys', (raw) => ({ ...raw, cookieKeys: [] })],
      ['an unknown format', (raw) => ({ ...raw, version: 3 })],
      [
        'a public key only',
        (raw) => ({ ...raw, signingKeys: raw.signingKeys.map(({ d: _d, ...rest }) => rest) }),
      ],
      [
        'a key with no state',
        (raw) => ({ ...raw, accessTokenKeys: (raw.accessTokenKeys as unknown[]).slice(1) }),
      ],
      ['a state with no key', (raw) => ({ ...raw, signingKeys: raw.signingKeys.slice(1) })],
      ['two ID-token keys', (raw) => ({ ...raw, signingKeys: [...raw.signingKeys, raw.signingKeys.at(-1)] })],
      [
        'two current keys',
        (raw) => ({
          ...raw,
          accessTokenKeys: (raw.accessTokenKeys as Array<Record<string, unknown>>).map((entry) => ({
            ...entry,
            state: 'current',
          })),
        }),
      ],
    ];
    for (const [what, damage] of cases) {
      const { file, raw } = good();
      const damaged = damage(raw);
      writeFileSync(file, typeof damaged === 'string' ? damaged : JSON.stringify(damaged));
      assert.throws(
        () => read(file),
        (error: unknown) =>
          error instanceof KeyFileError &&
          error.message.includes(file) &&
          error.message.includes('is damaged') &&
          /backup/.test(error.message),
        what,
      );
    }
  });
});
