import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { KeyFileError, readKeyFile, type StoredKeys, writeKeyFile } from './key-file.ts';
import type { RingKey } from './key-ring.ts';
import { generateSigningKey } from './signing-key.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-key-file-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const fileIn = () => path.join(dir, `case-${++files}`, 'keys.json');
const read = (file: string) => readKeyFile(file, { now: 1000, retireAfterSeconds: 60 });

type Jwk = RingKey['jwk'];

/** A ring of each algorithm with a next, a retired and a current key (in that order). */
async function ringOf(alg: 'ES256' | 'RS256'): Promise<RingKey[]> {
  const [current, next, retired] = [
    (await generateSigningKey(alg)) as Jwk,
    (await generateSigningKey(alg)) as Jwk,
    (await generateSigningKey(alg)) as Jwk,
  ];
  return [
    { jwk: next, state: 'next', createdAt: 500 },
    { jwk: retired, state: 'retired', createdAt: 1, activatedAt: 2, retiredAt: 500, retireAt: 1500 },
    { jwk: current, state: 'current', createdAt: 3, activatedAt: 500 },
  ];
}

async function stored(): Promise<StoredKeys> {
  return {
    accessTokenRing: await ringOf('ES256'),
    idTokenRing: await ringOf('RS256'),
    cookieKeys: ['cookie-key-1'],
  };
}

const byKid = (ring: readonly RingKey[]) => Object.fromEntries(ring.map((key) => [key.jwk.kid, key]));
const currentOf = (ring: readonly RingKey[]) => ring.find((key) => key.state === 'current')!;

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
    assert.deepEqual(byKid(back!.keys.accessTokenRing), byKid(keys.accessTokenRing));
    assert.deepEqual(byKid(back!.keys.idTokenRing), byKid(keys.idTokenRing));
    assert.deepEqual(back!.keys.cookieKeys, keys.cookieKeys);
  });

  test('keeps format 1 readable: signingKeys has the current ES256 key first, the current ID-token key last', async () => {
    const file = fileIn();
    const keys = await stored();
    writeKeyFile(file, keys);
    const raw = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(raw.version, 2);
    assert.equal(raw.signingKeys[0].kid, currentOf(keys.accessTokenRing).jwk.kid);
    assert.equal(raw.signingKeys.at(-1).kid, currentOf(keys.idTokenRing).jwk.kid);
    assert.deepEqual(raw.cookieKeys, ['cookie-key-1']);
  });

  test('stays readable by a Gatehouse from before the ID-token ring: one RS256 key in signingKeys, the current one', async () => {
    const file = fileIn();
    const keys = await stored();
    writeKeyFile(file, keys);
    const raw = JSON.parse(readFileSync(file, 'utf8'));
    // That version takes the one RS256 key of signingKeys and calls any other key not in
    // accessTokenKeys damage; the rest of the ID ring is in fields it does not read.
    const rs = raw.signingKeys.filter((jwk: { alg: string }) => jwk.alg === 'RS256');
    assert.deepEqual(
      rs.map((jwk: { kid: string }) => jwk.kid),
      [currentOf(keys.idTokenRing).jwk.kid],
    );
    assert.deepEqual(
      raw.signingKeys.slice(0, -1).map((jwk: { kid: string }) => jwk.kid),
      raw.accessTokenKeys.map((entry: { kid: string }) => entry.kid),
    );
    assert.deepEqual(
      raw.idTokenKeys.map((entry: { kid: string; state: string }) => [entry.kid, entry.state]),
      ['current', 'next', 'retired'].map((state) => [
        keys.idTokenRing.find((key) => key.state === state)!.jwk.kid,
        state,
      ]),
    );
    assert.deepEqual(
      raw.idTokenRingKeys.map((jwk: { kid: string; d?: string }) => [jwk.kid, typeof jwk.d]),
      ['next', 'retired'].map((state) => [
        keys.idTokenRing.find((key) => key.state === state)!.jwk.kid,
        'string',
      ]),
    );
  });

  test('a format-2 file from before the ID-token ring migrates: its RS256 key becomes the current ID-token key', async () => {
    const file = fileIn();
    const keys = await stored();
    const idKey = currentOf(keys.idTokenRing).jwk;
    writeKeyFile(file, keys);
    // What the previous version wrote: no idTokenKeys or idTokenRingKeys.
    const {
      idTokenKeys: _states,
      idTokenRingKeys: _keys,
      ...previous
    } = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(previous.version, 2);
    writeFileSync(file, JSON.stringify(previous));
    const back = read(file);
    assert.equal(back?.migrated, true);
    assert.deepEqual(
      back!.keys.idTokenRing.map((key) => [key.jwk, key.state, key.createdAt, key.activatedAt]),
      [[idKey, 'current', 1000, 1000]],
      'the same private key: ID tokens it signed still verify',
    );
    assert.deepEqual(byKid(back!.keys.accessTokenRing), byKid(keys.accessTokenRing), 'access ring untouched');
    assert.deepEqual(back!.keys.cookieKeys, ['cookie-key-1'], 'sessions survive the migration');
    // Written back, it reads as a file with an ID ring.
    writeKeyFile(file, back!.keys);
    assert.equal(read(file)?.migrated, false);
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
      back!.keys.accessTokenRing.map((key) => [key.jwk.kid, key.state, key.activatedAt]),
      [[es.kid, 'current', 1000]],
    );
    assert.deepEqual(
      back!.keys.idTokenRing.map((key) => [key.jwk.kid, key.state, key.activatedAt]),
      [[rs.kid, 'current', 1000]],
    );
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
    const ring = read(file)!.keys.accessTokenRing;
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
    type Raw = Record<string, unknown> & {
      signingKeys: Array<Record<string, unknown>>;
      idTokenKeys: Array<Record<string, unknown>>;
      idTokenRingKeys: Array<Record<string, unknown>>;
    };
    // A reason, where the case could also fail for another (the damage must be the one found).
    const cases: Array<[string, (raw: Raw) => unknown, RegExp?]> = [
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
        'two RS256 keys in signingKeys',
        (raw) => ({ ...raw, signingKeys: [...raw.signingKeys, raw.idTokenRingKeys[0]] }),
        /expected one RS256 key, found 2/,
      ],
      [
        'an ID-token key with no state',
        (raw) => ({ ...raw, idTokenKeys: raw.idTokenKeys.slice(0, -1) }),
        /no entry in idTokenKeys/,
      ],
      [
        'an ID-token state with no key',
        (raw) => ({ ...raw, idTokenRingKeys: raw.idTokenRingKeys.slice(1) }),
        /idTokenKeys names/,
      ],
      [
        'an ID-token key listed twice',
        (raw) => ({ ...raw, idTokenRingKeys: [...raw.idTokenRingKeys, raw.signingKeys.at(-1)] }),
        /appears twice/,
      ],
      [
        'an ID ring whose current key is not the one in signingKeys',
        (raw) => ({
          ...raw,
          idTokenKeys: raw.idTokenKeys.map((entry) => ({
            ...entry,
            state: entry.state === 'current' ? 'next' : entry.state === 'next' ? 'current' : entry.state,
          })),
        }),
        /is not the current ID-token key/,
      ],
      [
        'an access-token key in the ID ring',
        (raw) => ({
          ...raw,
          idTokenRingKeys: [...raw.idTokenRingKeys, { ...raw.signingKeys[0], kid: 'moved' }],
          idTokenKeys: [...raw.idTokenKeys, { kid: 'moved', state: 'retired', created_at: 1, retire_at: 9 }],
        }),
        /key moved is not RS256/,
      ],
      [
        'ID-token ring keys without their states',
        (raw) => ({ ...raw, idTokenKeys: undefined }),
        /without idTokenKeys/,
      ],
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
    for (const [what, damage, reason] of cases) {
      const { file, raw } = good();
      const damaged = damage(raw);
      writeFileSync(file, typeof damaged === 'string' ? damaged : JSON.stringify(damaged));
      assert.throws(
        () => read(file),
        (error: unknown) =>
          error instanceof KeyFileError &&
          error.message.includes(file) &&
          error.message.includes('is damaged') &&
          /backup/.test(error.message) &&
          (reason ?? /./).test(error.message),
        what,
      );
    }
  });
});
