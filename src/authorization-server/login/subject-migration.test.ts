import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { after, before, test } from 'node:test';
import { createSqliteRevocationEventLog } from '../revocation/event-log.ts';
import { createSqliteAdapterFactory, openDatabase } from '../store/sqlite-store.ts';
import { subjectFor } from './approved-users.ts';
import { createSqliteAccounts } from './sqlite-accounts.ts';
import { legacySubjectFor, migrateSubjects } from './subject-migration.ts';

const KEY = 'a-subject-key-for-this-test-0123456789abcd';
/** How subjects were derived before the key: unkeyed SHA-256 of the address. */
const legacy = (email: string) =>
  `user_${createHash('sha256').update(email).digest('base64url').slice(0, 22)}`;

test('legacySubjectFor is the old unkeyed derivation', () => {
  assert.equal(legacySubjectFor('alice@example.com'), legacy('alice@example.com'));
});

let dir: string;
let db: DatabaseSync;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-subjects-'));
  db = openDatabase(dir);
});
after(() => {
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('legacy subjects move to keyed ones everywhere they are kept, once, and nothing else changes', async () => {
  const accounts = createSqliteAccounts(db);
  const log = createSqliteRevocationEventLog(db);
  const adapter = createSqliteAdapterFactory(db);
  const alice = legacy('alice@example.com');
  const bob = legacy('bob@example.com');
  await accounts.remember(alice, 'alice@example.com');
  await accounts.remember(bob, 'bob@example.com');
  await accounts.rememberGrant(alice, 'client-1', 'grant-1');
  await adapter('Grant').upsert('grant-1', { accountId: alice, clientId: 'client-1', jti: 'grant-1' }, 3600);
  await adapter('AccessToken').upsert('at-1', { accountId: alice, grantId: 'grant-1', jti: 'at-1' }, 900);
  await adapter('Session').upsert('s-1', { accountId: bob, uid: 'u-1', jti: 's-1' }, 3600);
  // A client that names itself after a subject is not touched: only the fields that hold subjects
  // are rewritten (else its registration would tell whether the account exists, and its new subject).
  await adapter('Client').upsert('c-1', { client_id: 'c-1', client_name: alice, contacts: [alice] });
  await adapter('Interaction').upsert(
    'i-1',
    { jti: 'i-1', session: { accountId: bob }, result: { login: { accountId: bob } } },
    600,
  );
  log.append({ type: 'subject', sub: bob, at: 1 });

  const subjectOf = (email: string) => subjectFor(email, KEY);
  assert.deepEqual(migrateSubjects(db, subjectOf), { moved: 2, consentsMerged: 0 });
  const newAlice = subjectOf('alice@example.com');
  const newBob = subjectOf('bob@example.com');
  assert.deepEqual((await accounts.subjects()).sort(), [newAlice, newBob].sort());
  assert.equal(await accounts.emailOf(newAlice), 'alice@example.com');
  assert.equal(await accounts.emailOf(alice), undefined);
  assert.equal(await accounts.grantFor(newAlice, 'client-1'), 'grant-1');
  assert.equal((await adapter('Grant').find('grant-1'))?.accountId, newAlice);
  assert.equal((await adapter('AccessToken').find('at-1'))?.accountId, newAlice);
  assert.equal((await adapter('Session').findByUid('u-1'))?.accountId, newBob);
  const client = await adapter('Client').find('c-1');
  assert.equal(client?.client_name, alice);
  assert.deepEqual(client?.contacts, [alice]);
  const interaction = (await adapter('Interaction').find('i-1')) as {
    session: { accountId: string };
    result: { login: { accountId: string } };
  };
  assert.equal(interaction.session.accountId, newBob);
  assert.equal(interaction.result.login.accountId, newBob);
  const events = db.prepare('SELECT payload FROM revocation_events').all();
  assert.ok(events.some((row) => String(row.payload).includes(newBob)));
  assert.ok(!events.some((row) => String(row.payload).includes(`"${bob}"`)));
  // Idempotent: a second start moves nothing.
  assert.deepEqual(migrateSubjects(db, subjectOf), { moved: 0, consentsMerged: 0 });
});

test('an account with a consent record under both subjects keeps the one under its new subject', async () => {
  const accounts = createSqliteAccounts(db);
  const carolOld = legacy('carol@example.com');
  const carolNew = subjectFor('carol@example.com', KEY);
  await accounts.remember(carolOld, 'carol@example.com');
  await accounts.rememberGrant(carolOld, 'client-9', 'old-grant');
  await accounts.rememberGrant(carolNew, 'client-9', 'new-grant');
  await accounts.rememberGrant(carolOld, 'client-8', 'other-grant');
  const result = migrateSubjects(db, (email) => subjectFor(email, KEY));
  assert.equal(result.consentsMerged, 1);
  assert.equal(await accounts.grantFor(carolNew, 'client-9'), 'new-grant');
  assert.equal(await accounts.grantFor(carolNew, 'client-8'), 'other-grant');
  assert.equal(await accounts.grantFor(carolOld, 'client-9'), undefined);
});
