/**
 * The operation-approval contract (operation-approvals.ts), against SQLite and PostgreSQL alike:
 * only a pending, unexpired approval is decided; only an approved, unexpired one is used, once,
 * even when many calls race for it.
 */
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { after, before, beforeEach, describe, test } from 'node:test';
import {
  createTestDatabase,
  skipWithoutPostgres,
  type TestDatabase,
} from '../../../test/helpers/postgres.ts';
import { connectPostgres, type Postgres } from '../store/postgres/connection.ts';
import { migrate } from '../store/postgres/migrations.ts';
import { POSTGRES_MIGRATIONS } from '../store/postgres/schema.ts';
import type { NewApproval, OperationApprovals } from './operation-approvals.ts';
import { postgresOperationApprovals } from './postgres-operation-approvals.ts';
import { createSqliteOperationApprovals } from './sqlite-operation-approvals.ts';

const skipPostgres = await skipWithoutPostgres();
const NOW = 1_800_000_000_000;
const operation = {
  sub: 'user_a',
  clientId: 'agent-1',
  tool: 'place_order',
  argumentsDigest: 'd'.repeat(43),
  grantId: 'grant-1',
};
let counter = 0;
const newApproval = (overrides: Partial<NewApproval> = {}): NewApproval => ({
  id: `ap-${++counter}`,
  ...operation,
  grantId: 'grant-1',
  arguments: { symbol: 'SAP', side: 'buy', quantity: 3 },
  requestId: 'req-1',
  createdAt: NOW,
  expiresAt: NOW + 300_000,
  ...overrides,
});

function contract(fresh: () => Promise<OperationApprovals>) {
  test('an approval is of its grant: another grant of the same client finds and uses nothing', async () => {
    const approvals = await fresh();
    const { id } = await approvals.create(newApproval());
    await approvals.decide(id, 'approved', NOW + 1, NOW + 300_000);
    const otherGrant = { ...operation, grantId: 'grant-2' };
    assert.equal(await approvals.findCurrent(otherGrant, NOW + 2), undefined);
    assert.equal(await approvals.consume(otherGrant, NOW + 2), undefined);
    assert.equal((await approvals.consume(operation, NOW + 2))?.id, id);
  });

  test('approving starts the retry window: an approval given late still waits its time', async () => {
    const approvals = await fresh();
    const { id } = await approvals.create(newApproval({ expiresAt: NOW + 10 }));
    const approved = await approvals.decide(id, 'approved', NOW + 9, NOW + 9 + 300_000);
    assert.equal(approved?.expiresAt, NOW + 9 + 300_000);
    assert.ok(await approvals.consume(operation, NOW + 60_000), 'usable after the first deadline');
  });

  test('one pending approval per operation: requests at the same moment get the same one', async () => {
    const approvals = await fresh();
    const created = await Promise.all(Array.from({ length: 6 }, () => approvals.create(newApproval())));
    assert.equal(new Set(created.map((approval) => approval.id)).size, 1);
    const { id } = created[0]!;
    await approvals.decide(id, 'approved', NOW + 1, NOW + 300_000);
    assert.notEqual((await approvals.create(newApproval())).id, id, 'a new one once that one is decided');
  });

  test('the last use of an approval of the operation is known, for a second identical call', async () => {
    const approvals = await fresh();
    const { id } = await approvals.create(newApproval());
    await approvals.decide(id, 'approved', NOW + 1, NOW + 300_000);
    assert.equal(await approvals.lastUsed(operation, NOW), undefined);
    await approvals.consume(operation, NOW + 2);
    assert.equal((await approvals.lastUsed(operation, NOW))?.id, id);
    assert.equal(await approvals.lastUsed(operation, NOW + 3), undefined, 'not since then');
  });

  test('created pending, found open, read back with its arguments', async () => {
    const approvals = await fresh();
    const created = await approvals.create(newApproval());
    assert.equal(created.status, 'pending');
    const read = await approvals.get(created.id);
    assert.deepEqual(read?.arguments, { symbol: 'SAP', side: 'buy', quantity: 3 });
    assert.equal(read?.grantId, 'grant-1');
    assert.equal((await approvals.findCurrent(operation, NOW + 1))?.id, created.id);
    assert.equal(
      await approvals.findCurrent({ ...operation, argumentsDigest: 'e'.repeat(43) }, NOW),
      undefined,
    );
    assert.equal(await approvals.findCurrent(operation, NOW + 300_001), undefined, 'expired is not open');
  });

  test('only a pending, unexpired approval is decided, once', async () => {
    const approvals = await fresh();
    const { id } = await approvals.create(newApproval());
    assert.equal(await approvals.consume(operation, NOW + 1), undefined, 'pending is not usable');
    assert.equal((await approvals.decide(id, 'approved', NOW + 2, NOW + 300_000))?.status, 'approved');
    assert.equal(await approvals.decide(id, 'denied', NOW + 3, NOW + 300_000), undefined, 'decided is final');
    const late = await approvals.create(newApproval());
    assert.equal(
      await approvals.decide(late.id, 'approved', NOW + 300_001, NOW + 300_000),
      undefined,
      'expired',
    );
  });

  test('an approved approval serves one call: many racing calls, one wins', async () => {
    const approvals = await fresh();
    const { id } = await approvals.create(newApproval());
    await approvals.decide(id, 'approved', NOW + 1, NOW + 300_000);
    const results = await Promise.all(Array.from({ length: 8 }, () => approvals.consume(operation, NOW + 2)));
    assert.equal(results.filter(Boolean).length, 1);
    assert.equal((await approvals.get(id))?.status, 'used');
    assert.equal(await approvals.consume(operation, NOW + 3), undefined);
    assert.equal(await approvals.findCurrent(operation, NOW + 3), undefined, 'used is not current');
  });

  test('denied and expired approvals serve no call; purge forgets what ended', async () => {
    const approvals = await fresh();
    const denied = await approvals.create(newApproval());
    await approvals.decide(denied.id, 'denied', NOW + 1, NOW + 300_000);
    assert.equal(await approvals.consume(operation, NOW + 2), undefined);
    assert.equal((await approvals.findCurrent(operation, NOW + 2))?.status, 'denied', 'a denial stands');
    const expiring = await approvals.create(newApproval({ expiresAt: NOW + 10 }));
    await approvals.decide(expiring.id, 'approved', NOW + 5, NOW + 10);
    assert.equal(await approvals.consume(operation, NOW + 11), undefined, 'approved, but expired');
    assert.ok((await approvals.purge(NOW + 1_000_000)) >= 2);
    assert.equal(await approvals.get(expiring.id), undefined);
  });
}

describe('operation approvals in SQLite', () => {
  contract(async () => createSqliteOperationApprovals(new DatabaseSync(':memory:')));
});

describe('operation approvals in PostgreSQL', { skip: skipPostgres }, () => {
  let database: TestDatabase;
  let postgres: Postgres;
  before(async () => {
    database = await createTestDatabase();
    postgres = connectPostgres(database.url, { max: 4, acquireTimeoutMs: 2000, statementTimeoutMs: 5000 });
    await migrate(postgres, POSTGRES_MIGRATIONS);
  });
  after(async () => {
    await postgres?.close();
    await database?.drop();
  });
  beforeEach(async () => {
    await postgres.query('TRUNCATE operation_approvals');
  });
  contract(async () => postgresOperationApprovals(postgres));
});
