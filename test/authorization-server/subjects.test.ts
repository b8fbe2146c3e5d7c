/**
 * Pseudonymous subjects keyed with the installation's secret (issue 9), and the move of existing
 * subjects to the key's derivation at start: no session ended, no grant lost, tokens still valid.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { authorize, basic, postForm, registerNativeClient, userToken } from '../helpers/oauth.ts';
import { internalSecret } from '../helpers/revocation.ts';

const REDIRECT_URI = 'http://127.0.0.1/callback';

describe('keyed subjects', () => {
  let as: TestAuthorizationServer;
  let clientId: string;
  before(async () => {
    as = await startTestAuthorizationServer();
    clientId = await registerNativeClient(as.issuer, [REDIRECT_URI]);
  });
  after(() => as.close());

  const keyFile = () => path.join(as.dataDir, 'secrets/subject.key');
  const subjectOf = async (token: string) => {
    const answer = await postForm(
      `${as.issuer}/introspect`,
      { token },
      { authorization: basic('gatehouse-gateway', internalSecret(as, 'gatehouse-gateway')) },
    );
    return answer.json as { active: boolean; sub?: string };
  };

  test('the key is made at first start, owner-only, and the subject is not the unkeyed hash of the address', async () => {
    assert.ok(existsSync(keyFile()));
    if (process.platform !== 'win32') assert.equal(statSync(keyFile()).mode & 0o777, 0o600);
    assert.ok(readFileSync(keyFile(), 'utf8').trim().length >= 32);
    const { token } = await userToken({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT_URI,
      scope: 'stocks:read',
    });
    const { sub } = await subjectOf(String(token.json.access_token));
    const unkeyed = `user_${createHash('sha256').update('alice@example.com').digest('base64url').slice(0, 22)}`;
    assert.match(sub ?? '', /^user_[A-Za-z0-9_-]{22}$/);
    assert.notEqual(sub, unkeyed);
  });

  test('subjects that no longer match the key move at start: the token stays valid, the grant stays, no new consent', async () => {
    const { token } = await userToken({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT_URI,
      scope: 'stocks:read',
    });
    const access = String(token.json.access_token);
    const before = await subjectOf(access);
    assert.equal(before.active, true);
    // As an installation from before the key: its subjects were derived otherwise.
    rmSync(keyFile());
    await as.restart();
    const afterMove = await subjectOf(access);
    assert.equal(afterMove.active, true, 'the token survives the move');
    assert.notEqual(afterMove.sub, before.sub);
    assert.ok(as.logs.some((line) => line.includes('subjects moved to keyed identifiers')));
    // Signing in again with the same client: the grant is found under the new subject.
    const again = await authorize({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT_URI,
      scope: 'stocks:read',
    });
    assert.ok(!again.pages.includes('consent'), `no new consent: ${again.pages.join(', ')}`);
    // And a third start moves nothing.
    const lines = as.logs.length;
    await as.restart();
    assert.ok(!as.logs.slice(lines).some((line) => line.includes('subjects moved')));
  });
});
