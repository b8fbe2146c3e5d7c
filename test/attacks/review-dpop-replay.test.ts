/**
 * Review of issue 7 (DPoP end to end): the gateway's `jti` replay cache is a bounded LRU that
 * anyone with a tagged token (any token the authorization server ever issued, expired or revoked
 * too) can flush, because a proof is verified and its `jti` recorded before the token is looked at
 * and whatever key signed it. A captured proof can then be replayed within its `iat` window. Found by
 * an outside review; marked `todo` with the reason until fixed.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { createDpopProofVerifier } from '../../src/gateway/dpop-proof.ts';
import { createDpopKey, type DpopKey, dpopProof } from '../helpers/dpop.ts';

const HTU = 'https://gateway.example/mcp';

const request = (proof: string) =>
  ({ method: 'POST', rawHeaders: ['DPoP', proof], headers: { dpop: proof } }) as unknown as IncomingMessage;

const proofFor = (key: DpopKey, token: string) =>
  dpopProof(key, { htm: 'POST', htu: HTU, accessToken: token });

test("another key's proofs do not push a victim's proof out of the replay cache", {
  todo: "dpop-proof.ts records every verified jti in one LRU before the token's key is compared: replayCacheMaxEntries proofs of the attacker's own evict the victim's",
}, async () => {
  const verifier = createDpopProofVerifier({
    algorithms: ['ES256'],
    maxAgeSeconds: 60,
    replayCacheMaxEntries: 1000,
  });
  const victimKey = await createDpopKey();
  const victimToken = 'victim-token';
  const captured = await proofFor(victimKey, victimToken);
  const first = await verifier.verify(request(captured), { htu: HTU, accessToken: victimToken });
  assert.equal(first.ok, true);
  assert.equal(
    (await verifier.verify(request(captured), { htu: HTU, accessToken: victimToken })).ok,
    false,
    'a replay is refused while the jti is remembered',
  );

  // The attacker's own key and token (its own, expired one will do: the binding is checked later).
  const attackerKey = await createDpopKey();
  const attackerToken = 'attacker-token';
  for (let i = 0; i < 1000; i += 1) {
    const own = await proofFor(attackerKey, attackerToken);
    assert.equal((await verifier.verify(request(own), { htu: HTU, accessToken: attackerToken })).ok, true);
  }
  const replay = await verifier.verify(request(captured), { htu: HTU, accessToken: victimToken });
  assert.equal(replay.ok, false, 'the captured proof is still refused as a replay');
});
