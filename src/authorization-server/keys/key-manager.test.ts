import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, importJWK, jwtVerify, SignJWT } from 'jose';
import { createLogger } from '../../shared/logging.ts';
import { createAccessTokenSigner } from '../tokens/access-token-jwt.ts';
import { KeyFileError } from './key-file.ts';
import { createKeyManager, type KeyManagerOptions } from './key-manager.ts';
import { KeyRotationTooSoonError } from './key-ring.ts';
import { generateSigningKey } from './signing-key.ts';

const root = mkdtempSync(path.join(tmpdir(), 'gatehouse-key-manager-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

/** A manager on a fresh data dir with a clock the test moves (seconds), and its audit lines. */
async function setUp(overrides: Partial<KeyManagerOptions> = {}, dataDir = path.join(root, `d${++dirs}`)) {
  const clock = { seconds: 1_000_000 };
  const lines: Array<Record<string, unknown>> = [];
  const options: KeyManagerOptions = {
    dataDir,
    retireAfterSeconds: 960,
    idTokenRetireAfterSeconds: 1200,
    publishBeforeUseSeconds: 599,
    rotateEverySeconds: undefined,
    logger: createLogger('test', { level: 'debug', write: (line) => lines.push(JSON.parse(line)) }),
    now: () => clock.seconds * 1000,
    ...overrides,
  };
  const keys = await createKeyManager(options);
  const audits = (event: string) => lines.filter((line) => line.event === event);
  return { keys, clock, dataDir, options, audits };
}

const jwksKids = (keys: { jwks(): { keys: Array<{ kid?: string }> } }) =>
  keys.jwks().keys.map((key) => key.kid);
const idKid = (keys: { list(): Array<{ kid: string; state: string; use: string }> }, state: string) =>
  keys.list().find((key) => key.use === 'id_token' && key.state === state)?.kid;
const states = (keys: { list(): Array<{ kid: string; state: string; use: string }> }) =>
  keys.list().map((key) => `${key.use}:${key.state}`);

describe('the key manager', () => {
  test('first start: a current and a next key of each ring, a cookie key, in a 0600 file', async () => {
    const { keys, dataDir } = await setUp();
    assert.deepEqual(states(keys), [
      'access_token:current',
      'access_token:next',
      'id_token:current',
      'id_token:next',
    ]);
    assert.deepEqual(
      keys.list().map((key) => [key.alg, key.rotates]),
      [
        ['ES256', true],
        ['ES256', true],
        ['RS256', true],
        ['RS256', true],
      ],
    );
    assert.equal(statSync(path.join(dataDir, 'keys.json')).mode & 0o777, 0o600);
    assert.equal(keys.cookieKeys.length, 1);
    for (const key of keys.jwks().keys) assert.equal('d' in key, false, 'the JWKS carries public keys only');
    assert.deepEqual(
      jwksKids(keys),
      keys.list().map((key) => key.kid),
    );
    for (const key of keys.list()) assert.equal('d' in key || 'jwk' in key, false);
    const [current] = keys.list();
    assert.equal(keys.signingKey().kid, current!.kid);
    // Only the current ID-token key signs; the next one is published but has signed nothing.
    assert.deepEqual(
      keys.idTokenKeys().map((key) => key.kid),
      [idKid(keys, 'current')],
    );
  });

  test('a restart reads the same keys back', async () => {
    const first = await setUp();
    const again = await createKeyManager(first.options);
    assert.deepEqual(again.jwks(), first.keys.jwks());
    assert.deepEqual(again.cookieKeys, first.keys.cookieKeys);
  });

  test('rotations switch the signer at once; tokens signed before verify until the old key is retired away', async () => {
    const { keys, clock, audits, options } = await setUp();
    const sign = createAccessTokenSigner('https://as.example', keys.signingKey);
    const claims = (exp: number) => ({ sub: 'u', aud: 'https://mcp.example', client_id: 'c', exp });
    const [k1, k2] = keys.list().map((key) => key.kid);
    const before = await sign(claims(clock.seconds + 900));
    assert.equal(decodeProtectedHeader(before).kid, k1);

    // The overlap rule: k2 was published just now.
    await assert.rejects(keys.rotate('alice'), (error: unknown) => {
      assert.ok(error instanceof KeyRotationTooSoonError);
      assert.equal(error.retryAt, clock.seconds + 600);
      return true;
    });
    assert.equal(audits('keys.rotated').at(-1)?.outcome, 'denied');
    assert.equal(keys.signingKey().kid, k1, 'a refused rotation changes nothing');

    clock.seconds += 600;
    const first = await keys.rotate('alice');
    assert.equal(first.current, k2);
    assert.equal(first.retired, k1);
    assert.equal(first.retireAt, new Date((clock.seconds + 960) * 1000).toISOString());
    const audit = audits('keys.rotated').at(-1)!;
    assert.deepEqual(
      [audit.outcome, audit.actor, audit.kid_new, audit.kid_retired, audit.kid_next],
      ['success', 'alice', k2, k1, first.next],
    );
    const afterFirst = await sign(claims(clock.seconds + 900));
    assert.equal(decodeProtectedHeader(afterFirst).kid, k2, 'the next token is signed with the new key');
    assert.deepEqual(states(keys), [
      'access_token:current',
      'access_token:next',
      'access_token:retired',
      'id_token:current',
      'id_token:next',
      'id_token:retired',
    ]);
    // The token signed with k1 still verifies: k1 stays published and in the verification keys.
    await jwtVerify(before, keys.verificationKey, { currentDate: new Date(clock.seconds * 1000) });
    assert.ok(jwksKids(keys).includes(k1));

    clock.seconds += 600;
    const second = await keys.rotate('schedule-test');
    assert.equal(second.current, first.next);
    assert.deepEqual(jwksKids(keys).slice(0, 4), [second.current, second.next, k2, k1]);

    // k1 retired 600 s ago with 960 s to go: 360 s later it leaves the JWKS, then the file.
    clock.seconds += 360;
    assert.ok(!jwksKids(keys).includes(k1), 'past retireAt it is not published');
    await assert.rejects(
      jwtVerify(before, keys.verificationKey, { currentDate: new Date(clock.seconds * 1000) }),
    );
    assert.ok(
      JSON.parse(readFileSync(path.join(options.dataDir, 'keys.json'), 'utf8')).signingKeys.some(
        (key: { kid: string }) => key.kid === k1,
      ),
    );
    await keys.maintain();
    const file = JSON.parse(readFileSync(path.join(options.dataDir, 'keys.json'), 'utf8'));
    assert.ok(!file.signingKeys.some((key: { kid: string }) => key.kid === k1), 'pruned from keys.json');
    assert.deepEqual(
      audits('keys.removed').map((line) => line.kid),
      [k1],
    );
    // A restart after all this signs with the same key and publishes the same set.
    const restarted = await createKeyManager(options);
    assert.equal(restarted.signingKey().kid, second.current);
    assert.deepEqual(restarted.jwks(), keys.jwks());
  });

  test('one rotation rotates both rings: each next key signs, each current key retires for its own time', async () => {
    const { keys, clock, audits, options } = await setUp();
    const [i1, i2] = [idKid(keys, 'current')!, idKid(keys, 'next')!];
    const [a1, a2] = [keys.signingKey().kid, keys.list()[1]!.kid];
    clock.seconds += 600;
    const rotated = await keys.rotate('alice');
    assert.deepEqual([rotated.current, rotated.retired], [a2, a1]);
    assert.equal(rotated.retireAt, new Date((clock.seconds + 960) * 1000).toISOString());
    assert.deepEqual([rotated.idToken.current, rotated.idToken.retired], [i2, i1]);
    assert.equal(
      rotated.idToken.retireAt,
      new Date((clock.seconds + 1200) * 1000).toISOString(),
      'the ID ring retires for idTokenRetireAfterSeconds',
    );
    const i3 = rotated.idToken.next;
    assert.ok(![i1, i2, rotated.next].includes(i3));
    assert.equal(idKid(keys, 'next'), i3);
    assert.equal(keys.list().find((key) => key.kid === i3)?.alg, 'RS256');
    // The signer's view: the new current key first, then the retired one; the next key signs nothing.
    assert.deepEqual(
      keys.idTokenKeys().map((key) => key.kid),
      [i2, i1],
    );
    for (const kid of [i1, i2, i3]) assert.ok(jwksKids(keys).includes(kid), `${kid} published`);
    const audit = audits('keys.rotated').at(-1)!;
    assert.deepEqual(
      [audit.id_token_kid_new, audit.id_token_kid_retired, audit.id_token_kid_next, audit.id_token_retire_at],
      [i2, i1, i3, rotated.idToken.retireAt],
    );
    assert.deepEqual([audit.kid_new, audit.kid_retired, audit.kid_next], [a2, a1, rotated.next]);
    // The file has both rings, and a restart signs with the same keys.
    const restarted = await createKeyManager(options);
    assert.deepEqual(restarted.list(), keys.list());
    assert.deepEqual(
      restarted.idTokenKeys().map((key) => key.kid),
      [i2, i1],
    );
  });

  test('the overlap rule holds for the ID ring: after the migration its new next key must wait, and so does the rotation', async () => {
    const first = await setUp();
    const i1 = idKid(first.keys, 'current')!;
    const file = path.join(first.dataDir, 'keys.json');
    const i1Jwk = JSON.parse(readFileSync(file, 'utf8')).signingKeys.at(-1);
    const issuedBefore = await new SignJWT({ sub: 'u' })
      .setProtectedHeader({ alg: 'RS256', kid: i1 })
      .sign(await importJWK(i1Jwk, 'RS256'));
    // What the version before the ID-token ring wrote: no idTokenKeys, no idTokenRingKeys.
    const {
      idTokenKeys: _states,
      idTokenRingKeys: _keys,
      ...previous
    } = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, JSON.stringify(previous), { mode: 0o600 });
    // Long after: the access ring's next key could sign, the ID ring's new one was made just now.
    first.clock.seconds += 10_000;
    const migratedAt = first.clock.seconds;
    const keys = await createKeyManager(first.options);
    assert.equal(idKid(keys, 'current'), i1, 'the same ID-token key signs on');
    const i2 = idKid(keys, 'next')!;
    assert.notEqual(i2, i1);
    assert.equal(
      keys.list().find((key) => key.kid === i2)?.promotableFrom,
      new Date((migratedAt + 600) * 1000).toISOString(),
    );
    // ID tokens issued before the migration still verify against the published keys.
    await jwtVerify(issuedBefore, createLocalJWKSet(keys.jwks()));

    const before = keys.list();
    await assert.rejects(keys.rotate('alice'), (error: unknown) => {
      assert.ok(error instanceof KeyRotationTooSoonError);
      assert.equal(error.retryAt, migratedAt + 600, 'the ID ring is the one that waits');
      return true;
    });
    assert.deepEqual(keys.list(), before, 'neither ring changed');
    assert.equal(keys.signingKey().kid, before[0]!.kid);
    first.clock.seconds += 599;
    await assert.rejects(keys.rotate('alice'), KeyRotationTooSoonError);
    first.clock.seconds += 1;
    const rotated = await keys.rotate('alice');
    assert.deepEqual([rotated.idToken.current, rotated.idToken.retired], [i2, i1]);
  });

  test('pruning: each retired key leaves the JWKS at its own retireAt, then keys.json', async () => {
    const { keys, clock, audits, dataDir } = await setUp();
    const file = path.join(dataDir, 'keys.json');
    const fileKids = () => {
      const raw = JSON.parse(readFileSync(file, 'utf8'));
      return [...raw.signingKeys, ...raw.idTokenRingKeys].map((key: { kid: string }) => key.kid);
    };
    clock.seconds += 600;
    const rotated = await keys.rotate('alice');
    const [a1, i1] = [rotated.retired, rotated.idToken.retired];

    clock.seconds += 960;
    assert.ok(!jwksKids(keys).includes(a1), 'the access-token key is past its retireAt');
    assert.ok(jwksKids(keys).includes(i1), 'the ID-token key is not, yet');
    assert.deepEqual(
      keys.idTokenKeys().map((key) => key.kid),
      [rotated.idToken.current, i1],
    );
    await keys.maintain();
    assert.ok(!fileKids().includes(a1) && fileKids().includes(i1));

    clock.seconds += 240;
    assert.ok(!jwksKids(keys).includes(i1), 'past its retireAt');
    assert.deepEqual(
      keys.idTokenKeys().map((key) => key.kid),
      [rotated.idToken.current],
      'and no longer verifies an id_token_hint',
    );
    assert.ok(fileKids().includes(i1), 'still in the file until maintenance');
    await keys.maintain();
    assert.ok(!fileKids().includes(i1), 'pruned from keys.json');
    assert.deepEqual(
      audits('keys.removed').map((line) => line.kid),
      [a1, i1],
    );
    assert.deepEqual(
      keys.list().map((key) => key.state),
      ['current', 'next', 'current', 'next'],
    );
  });

  test('rotations run one at a time: two at once promote one key, the other waits its turn and is refused', async () => {
    const { keys, clock } = await setUp();
    clock.seconds += 600;
    const results = await Promise.allSettled([keys.rotate('a'), keys.rotate('b')]);
    assert.equal(results[0].status, 'fulfilled');
    assert.equal(results[1].status, 'rejected');
    assert.ok((results[1] as PromiseRejectedResult).reason instanceof KeyRotationTooSoonError);
    assert.equal(
      keys.list().filter((key) => key.state === 'current' && key.use === 'access_token').length,
      1,
    );
  });

  test('scheduled rotation: due rotateEverySeconds after the key started signing, by the schedule', async () => {
    const { keys, clock, audits } = await setUp({ rotateEverySeconds: 90 * 86400 });
    const k1 = keys.signingKey().kid;
    clock.seconds += 90 * 86400 - 1;
    await keys.maintain();
    assert.equal(keys.signingKey().kid, k1, 'not yet due');
    clock.seconds += 1;
    const i1 = idKid(keys, 'current');
    await keys.maintain();
    assert.notEqual(keys.signingKey().kid, k1);
    assert.notEqual(idKid(keys, 'current'), i1, 'the ID ring rotates with it');
    assert.equal(idKid(keys, 'retired'), i1);
    assert.equal(audits('keys.rotated').at(-1)?.actor, 'schedule');
    // Just after a manual rotation the schedule does not try again, even if due by an old key.
    const { keys: quick, clock: quickClock, audits: quickAudits } = await setUp({ rotateEverySeconds: 700 });
    quickClock.seconds += 700;
    await quick.maintain();
    await quick.maintain();
    assert.equal(quickAudits('keys.rotated').length, 1);
  });

  test('startSchedule runs maintenance on a timer that does not hold the process open, and stops', async () => {
    const { keys, clock } = await setUp({ rotateEverySeconds: 1000 });
    const k1 = keys.signingKey().kid;
    clock.seconds += 1000;
    const stop = keys.startSchedule(10);
    const started = Date.now();
    while (keys.signingKey().kid === k1 && Date.now() - started < 2000)
      await new Promise((r) => setTimeout(r, 10));
    stop();
    assert.notEqual(keys.signingKey().kid, k1);
  });

  test('an existing format-1 keys.json keeps its keys: same signing kid, same cookie keys, and gains a next key', async () => {
    const dataDir = path.join(root, `d${++dirs}`);
    mkdirSync(dataDir, { recursive: true });
    const es = await generateSigningKey('ES256');
    const rs = await generateSigningKey('RS256');
    writeFileSync(
      path.join(dataDir, 'keys.json'),
      JSON.stringify({ signingKeys: [es, rs], cookieKeys: ['kept'] }),
      {
        mode: 0o600,
      },
    );
    const { keys } = await setUp({}, dataDir);
    assert.equal(keys.signingKey().kid, es.kid);
    assert.equal(idKid(keys, 'current'), rs.kid);
    assert.deepEqual(keys.cookieKeys, ['kept']);
    assert.deepEqual(states(keys), [
      'access_token:current',
      'access_token:next',
      'id_token:current',
      'id_token:next',
    ]);
    const file = JSON.parse(readFileSync(path.join(dataDir, 'keys.json'), 'utf8'));
    assert.equal(file.version, 2, 'written back in format 2');
    assert.equal(statSync(path.join(dataDir, 'keys.json')).mode & 0o777, 0o600);
    // The token an old installation signed verifies with the migrated keys.
    const old = await new SignJWT({ sub: 'u' })
      .setProtectedHeader({ alg: 'ES256', kid: es.kid })
      .sign(await (await import('jose')).importJWK(es, 'ES256'));
    await jwtVerify(old, keys.verificationKey);
  });

  test('a key that does not import stops the start (fail closed)', async () => {
    const first = await setUp();
    const file = path.join(first.dataDir, 'keys.json');
    const raw = JSON.parse(readFileSync(file, 'utf8'));
    raw.signingKeys[1].d = 'AAAA';
    writeFileSync(file, JSON.stringify(raw));
    await assert.rejects(createKeyManager(first.options), KeyFileError);
    // An ID-token ring key that is no RSA key, though it says RS256.
    const second = await setUp();
    const secondFile = path.join(second.dataDir, 'keys.json');
    const idRaw = JSON.parse(readFileSync(secondFile, 'utf8'));
    const ec = await generateSigningKey('ES256');
    idRaw.idTokenRingKeys[0] = { ...ec, alg: 'RS256', kid: idRaw.idTokenRingKeys[0].kid };
    writeFileSync(secondFile, JSON.stringify(idRaw));
    await assert.rejects(createKeyManager(second.options), (error: unknown) => {
      assert.ok(error instanceof KeyFileError);
      assert.match(error.message, /not an RSA key/);
      return true;
    });
  });

  test('a failed write leaves the ring and the signer as they were', async () => {
    const { keys, clock, dataDir, audits } = await setUp();
    const file = path.join(dataDir, 'keys.json');
    const saved = readFileSync(file);
    const k1 = keys.signingKey().kid;
    clock.seconds += 600;
    // A folder where the file should be: the rename fails, whoever runs the test (root too).
    rmSync(file);
    mkdirSync(path.join(file, 'in-the-way'), { recursive: true });
    try {
      await assert.rejects(keys.rotate('alice'));
    } finally {
      rmSync(file, { recursive: true });
      writeFileSync(file, saved, { mode: 0o600 });
    }
    assert.equal(keys.signingKey().kid, k1);
    assert.equal(audits('keys.rotated').at(-1)?.outcome, 'failure');
    assert.deepEqual(readdirSync(dataDir), ['keys.json'], 'no temporary file is left');
    await keys.rotate('alice');
    assert.notEqual(keys.signingKey().kid, k1);
  });
});
