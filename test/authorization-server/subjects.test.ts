/**
 * Pseudonymous subjects keyed with the installation's secret (issue 9), and the move of existing
 * subjects to the key's derivation at start: no session ended, no grant lost, tokens still valid.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import { legacySubjectFor, migrateSubjects } from '../../src/authorization-server/login/subject-migration.ts';
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
    // As an installation from before the key: its subjects were the unkeyed hashes, and no key.
    await as.running.close();
    const db = new DatabaseSync(path.join(as.dataDir, 'gatehouse.db'));
    assert.equal(migrateSubjects(db, legacySubjectFor).moved >= 1, true);
    db.close();
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

  test('a lost key is not replaced silently: the server refuses to start and says what to do', async () => {
    const { token } = await userToken({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT_URI,
      scope: 'stocks:read',
    });
    const access = String(token.json.access_token);
    const key = readFileSync(keyFile());
    rmSync(keyFile());
    await assert.rejects(
      as.restart(),
      /subject\.key is missing.*Restore the file from the backup.*GATEHOUSE_NEW_SUBJECT_KEY=1/s,
    );
    // Restored: everything as before.
    writeFileSync(keyFile(), key, { mode: 0o600 });
    await as.restart();
    assert.equal((await subjectOf(access)).active, true);
    // Or, deliberately, a new key: every subject moves to it, tokens still valid.
    const before = await subjectOf(access);
    rmSync(keyFile());
    process.env.GATEHOUSE_NEW_SUBJECT_KEY = '1';
    try {
      await as.restart();
    } finally {
      delete process.env.GATEHOUSE_NEW_SUBJECT_KEY;
    }
    const after = await subjectOf(access);
    assert.equal(after.active, true);
    assert.notEqual(after.sub, before.sub);
  });
});
