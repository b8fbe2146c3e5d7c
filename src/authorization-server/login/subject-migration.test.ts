import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { after, before, test } from 'node:test';
import { createSqliteRevocationEventLog } from '../revocation/event-log.ts';
import { createSqliteAdapterFactory, openDatabase } from '../store/sqlite-store.ts';
import { createAccounts } from './accounts.ts';
import { subjectFor } from './approved-users.ts';
import { migrateSubjects } from './subject-migration.ts';

const KEY = 'a-subject-key-for-this-test-0123456789abcd';
/** How subjects were derived before the key: unkeyed SHA-256 of the address. */
const legacy = (email: string) =>
  `user_${createHash('sha256').update(email).digest('base64url').slice(0, 22)}`;

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
  const accounts = createAccounts(db);
  const log = createSqliteRevocationEventLog(db);
  const adapter = createSqliteAdapterFactory(db);
  const alice = legacy('alice@example.com');
  const bob = legacy('bob@example.com');
  accounts.remember(alice, 'alice@example.com');
  accounts.remember(bob, 'bob@example.com');
  accounts.rememberGrant(alice, 'client-1', 'grant-1');
  await adapter('Grant').upsert('grant-1', { accountId: alice, clientId: 'client-1', jti: 'grant-1' }, 3600);
  await adapter('AccessToken').upsert('at-1', { accountId: alice, grantId: 'grant-1', jti: 'at-1' }, 900);
  await adapter('Session').upsert('s-1', { accountId: bob, uid: 'u-1', jti: 's-1' }, 3600);
  // A client whose id merely looks alike is not touched: only the quoted subject is replaced.
  await adapter('Client').upsert('c-1', { client_id: 'c-1', client_name: `${alice}x` });
  log.append({ type: 'subject', sub: bob, at: 1 });

  const subjectOf = (email: string) => subjectFor(email, KEY);
  assert.deepEqual(migrateSubjects(db, subjectOf), { moved: 2 });
  const newAlice = subjectOf('alice@example.com');
  const newBob = subjectOf('bob@example.com');
  assert.deepEqual(accounts.subjects().sort(), [newAlice, newBob].sort());
  assert.equal(accounts.emailOf(newAlice), 'alice@example.com');
  assert.equal(accounts.emailOf(alice), undefined);
  assert.equal(accounts.grantFor(newAlice, 'client-1'), 'grant-1');
  assert.equal((await adapter('Grant').find('grant-1'))?.accountId, newAlice);
  assert.equal((await adapter('AccessToken').find('at-1'))?.accountId, newAlice);
  assert.equal((await adapter('Session').findByUid('u-1'))?.accountId, newBob);
  assert.equal((await adapter('Client').find('c-1'))?.client_name, `${alice}x`);
  const events = db.prepare('SELECT payload FROM revocation_events').all();
  assert.ok(events.some((row) => String(row.payload).includes(newBob)));
  assert.ok(!events.some((row) => String(row.payload).includes(`"${bob}"`)));
  // Idempotent: a second start moves nothing.
  assert.deepEqual(migrateSubjects(db, subjectOf), { moved: 0 });
});
