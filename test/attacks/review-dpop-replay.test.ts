/**
 * Review of issue 7 (DPoP end to end): the gateway's `jti` replay cache was a bounded LRU that
 * anyone with a tagged token (any token the authorization server ever issued, expired or revoked
 * too) could flush, because a proof was verified and its `jti` recorded before the token was looked
 * at, whatever key signed it. A captured proof could then be replayed within its `iat` window.
 *
 * Now (dpop-replay-cache.ts) a proof's `jti` stays recorded only when its request goes through,
 * each key has a bucket of its own that only its holder can fill, and nothing is forgotten before it
 * lapses: past the limits new proofs are refused (429, 503), never old ones dropped.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { createDpopProofVerifier } from '../../src/gateway/dpop-proof.ts';
import { createIntrospectionCache } from '../../src/gateway/introspection-cache.ts';
import type { Introspection } from '../../src/gateway/introspection-client.ts';
import { createPhantomTokenTranslator } from '../../src/gateway/phantom-token.ts';
import { createDpopKey, type DpopKey, dpopProof } from '../helpers/dpop.ts';

const HTU = 'https://gateway.example/mcp';
const CONTEXT = { address: () => '192.0.2.1', htu: HTU };
const PHANTOM = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln';

const request = (token: string, proof: string) =>
  ({
    method: 'POST',
    rawHeaders: ['Authorization', `DPoP ${token}`, 'DPoP', proof],
    headers: { authorization: `DPoP ${token}`, dpop: proof },
  }) as unknown as IncomingMessage;

const proofFor = (key: DpopKey, token: string) =>
  dpopProof(key, { htm: 'POST', htu: HTU, accessToken: token });

/** A gateway's translator whose authorization server knows these tokens (bound to these keys). */
function gateway(tokens: Record<string, string | undefined>, replayCacheMaxEntries = 1000) {
  const exp = Math.floor(Date.now() / 1000) + 600;
  return createPhantomTokenTranslator(
    createIntrospectionCache({ maxSeconds: 30, maxEntries: 100 }),
    {
      introspect: async (token): Promise<Introspection> => {
        const jkt = tokens[token];
        return jkt ? { active: true, jwt: PHANTOM, exp, jkt } : { active: false };
      },
    },
    {
      dpop: {
        verifier: createDpopProofVerifier({
          algorithms: ['ES256'],
          maxAgeSeconds: 60,
          replayCacheMaxEntries,
        }),
        algorithms: ['ES256'],
      },
    },
  );
}

test("proofs for a dead token, or signed by another key, take no room: a victim's captured proof stays refused", async () => {
  const victim = await createDpopKey();
  const attacker = await createDpopKey();
  const translate = gateway({ 'victim-token': victim.jkt, 'attacker-live-token': attacker.jkt });
  const captured = await proofFor(victim, 'victim-token');
  assert.equal((await translate(request('victim-token', captured), CONTEXT)).bearer, 'phantom');
  const replayed = await translate(request('victim-token', captured), CONTEXT);
  assert.equal(replayed.action, 'refuse', 'a replay is refused while the jti is remembered');

  // The attacker's own expired token, and a live token bound to another key than the proofs'.
  for (let i = 0; i < 1200; i += 1) {
    const dead = await translate(
      request('attacker-dead-token', await proofFor(attacker, 'attacker-dead-token')),
      CONTEXT,
    );
    assert.equal(dead.bearer, 'inactive');
    const mismatch = await translate(
      request('victim-token', await proofFor(attacker, 'victim-token')),
      CONTEXT,
    );
    assert.equal(mismatch.action, 'refuse');
  }
  const replay = await translate(request('victim-token', captured), CONTEXT);
  assert.equal(replay.action, 'refuse', 'the captured proof is still refused as a replay');
  assert.equal(replay.action === 'refuse' && replay.error, 'invalid_dpop_proof');
});

test("a key's own proofs fill only its own bucket: past the limits the attacker is refused, the victim's proof is never forgotten", async () => {
  const victim = await createDpopKey();
  const attacker = await createDpopKey();
  const translate = gateway({ 'victim-token': victim.jkt, 'attacker-token': attacker.jkt }, 1500);
  const captured = await proofFor(victim, 'victim-token');
  assert.equal((await translate(request('victim-token', captured), CONTEXT)).bearer, 'phantom');

  const answers = new Map<string, number>();
  for (let i = 0; i < 1100; i += 1) {
    const own = await translate(
      request('attacker-token', await proofFor(attacker, 'attacker-token')),
      CONTEXT,
    );
    const label = own.action === 'forward' ? own.bearer : `${own.status} ${own.error}`;
    answers.set(label, (answers.get(label) ?? 0) + 1);
  }
  // 1,000 proofs a key within the window (the cap is at least 1,000), then 429 with Retry-After.
  assert.deepEqual(Object.fromEntries(answers), { phantom: 1000, '429 too_many_requests': 100 });
  const replay = await translate(request('victim-token', captured), CONTEXT);
  assert.equal(replay.action === 'refuse' && replay.error, 'invalid_dpop_proof', 'still a replay');
  const fresh = await translate(request('victim-token', await proofFor(victim, 'victim-token')), CONTEXT);
  assert.equal(fresh.bearer, 'phantom', "the victim's new proofs still go through");
});
