/**
 * The audit store's contract (audit-store.ts), one suite run against each store: SQLite and
 * PostgreSQL must find, order, page and prune the same records. PostgreSQL runs where a server is
 * reachable (test/helpers/postgres.ts); in CI it must be.
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
import { AuditQueryError, type AuditStore } from './audit-store.ts';
import { type AuditTrail, auditRow, createAuditTrail } from './audit-trail.ts';
import { postgresAuditStore } from './postgres-audit-store.ts';
import { createSqliteAuditStore } from './sqlite-audit-store.ts';

const DAY = 86_400_000;
// Before any test is declared: the runner starts the file's tests once its first ones are in.
const skipPostgres = await skipWithoutPostgres();

/** A fresh, empty store for each test. */
type StoreFactory = () => Promise<AuditStore>;

const exchange = {
  outcome: 'success',
  request_id: 'req-00000001',
  tool: 'get_stock',
  sub: 'user-sub-1',
  client_id: 'agent-client',
  actor: 'gatehouse-mcp-server',
  grant_id: 'grant-1',
  audience: 'http://localhost:8000/api/stocks',
  scope: 'stocks.read',
} as const;

function seed(trail: AuditTrail) {
  trail.record('consent', {
    outcome: 'success',
    sub: 'user-sub-1',
    client_id: 'agent-client',
    grant_id: 'grant-1',
    scope: 'stocks:read',
  });
  trail.record('token.issued', { outcome: 'success', sub: 'user-sub-1', client_id: 'agent-client' });
  trail.record('token.exchange', exchange);
  trail.record('login', { outcome: 'failure', client_id: 'other-client', reason: 'wrong code' });
  trail.record('token.exchange', {
    ...exchange,
    request_id: 'req-00000002',
    tool: 'get_customer',
    audience: 'http://localhost:8000/api/customers',
    scope: 'customers.read',
    outcome: 'denied',
  });
}

const events = (result: { records: Array<{ event: string }> }) => result.records.map((r) => r.event);

async function collect(lines: AsyncIterable<string>): Promise<string[]> {
  const all: string[] = [];
  for await (const line of lines) all.push(line);
  return all;
}

export function auditStoreContract(newStore: StoreFactory): void {
  async function fresh(retentionDays = 90) {
    const store = await newStore();
    const trail = createAuditTrail(store, { retentionDays });
    /** A record at the time given (the trail itself stamps `Date.now()`). */
    const at = (ms: number, event: string, fields: Record<string, unknown> = {}) =>
      store.append([auditRow(event, { outcome: 'success', ...fields }, ms)]);
    return { store, trail, at };
  }

  test('a record keeps the searchable fields as columns and everything else in fields', async () => {
    const { trail } = await fresh();
    trail.record('token.exchange', exchange);
    const [record] = (await trail.search({})).records;
    assert.ok(record);
    assert.match(record.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(typeof record.id, 'string');
    const { id: _id, at: _at, ...rest } = record;
    assert.deepEqual(rest, {
      event: 'token.exchange',
      outcome: 'success',
      sub: 'user-sub-1',
      client_id: 'agent-client',
      tool: 'get_stock',
      audience: 'http://localhost:8000/api/stocks',
      scope: 'stocks.read',
      grant_id: 'grant-1',
      request_id: 'req-00000001',
      fields: { actor: 'gatehouse-mcp-server' },
    });
  });

  test('searches by each field, the filters combined', async () => {
    const { trail } = await fresh();
    seed(trail);
    assert.deepEqual(events(await trail.search({ sub: 'user-sub-1' })), [
      'token.exchange',
      'token.exchange',
      'token.issued',
      'consent',
    ]);
    assert.deepEqual(events(await trail.search({ clientId: 'other-client' })), ['login']);
    assert.deepEqual(
      (await trail.search({ tool: 'get_customer' })).records.map((r) => r.request_id),
      ['req-00000002'],
    );
    assert.deepEqual(
      (await trail.search({ api: 'http://localhost:8000/api/stocks' })).records.map((r) => r.tool),
      ['get_stock'],
    );
    assert.deepEqual(events(await trail.search({ event: 'consent' })), ['consent']);
    assert.deepEqual(events(await trail.search({ outcome: 'failure' })), ['login']);
    assert.deepEqual(events(await trail.search({ outcome: 'denied', event: 'token.exchange' })), [
      'token.exchange',
    ]);
    assert.deepEqual(
      (await trail.search({ requestId: 'req-00000001' })).records.map((r) => r.tool),
      ['get_stock'],
    );
    // The consent and the tool calls that rest on it.
    assert.deepEqual(events(await trail.search({ grantId: 'grant-1' })), [
      'token.exchange',
      'token.exchange',
      'consent',
    ]);
    assert.deepEqual((await trail.search({ sub: 'nobody' })).records, []);
  });

  test('a time range is inclusive at both ends, to the second', async () => {
    const { trail, at } = await fresh();
    const base = Date.UTC(2026, 0, 10);
    await at(base - 1, 'before');
    await at(base, 'first');
    await at(base + 5_000, 'middle');
    await at(base + 10_999, 'last');
    await at(base + 11_000, 'after');
    const s = base / 1000;
    assert.deepEqual(events(await trail.search({ since: s, until: s + 10 })), ['last', 'middle', 'first']);
    assert.deepEqual(events(await trail.search({ since: s + 11 })), ['after']);
    assert.deepEqual(events(await trail.search({ until: s - 1 })), ['before']);
    await assert.rejects(trail.search({ since: Number.NaN }), AuditQueryError);
    await assert.rejects(trail.search({ until: -1 }), AuditQueryError);
  });

  test('pages newest first with cursors, stable while records are added', async () => {
    const { trail } = await fresh();
    for (let i = 0; i < 25; i++) trail.record('e', { outcome: 'success', n: i });
    const n = (result: { records: Array<{ fields: Record<string, unknown> }> }) =>
      result.records.map((r) => r.fields.n);
    const first = await trail.search({ limit: 10 });
    assert.deepEqual(n(first), [24, 23, 22, 21, 20, 19, 18, 17, 16, 15]);
    assert.ok(first.nextCursor);
    // Newer records never shift a page that follows, nor repeat a record.
    for (let i = 25; i < 30; i++) trail.record('e', { outcome: 'success', n: i });
    const second = await trail.search({ limit: 10, cursor: first.nextCursor });
    assert.deepEqual(n(second), [14, 13, 12, 11, 10, 9, 8, 7, 6, 5]);
    const third = await trail.search({ limit: 10, cursor: second.nextCursor! });
    assert.deepEqual(n(third), [4, 3, 2, 1, 0]);
    assert.equal(third.nextCursor, undefined);
    // A filtered page pages the same way.
    const filtered = await trail.search({ event: 'e', limit: 29 });
    assert.ok(filtered.nextCursor);
    assert.deepEqual(n(await trail.search({ event: 'e', cursor: filtered.nextCursor })), [0]);
  });

  test('a page is 100 records unless asked, at most 1000; a bad limit or cursor is refused', async () => {
    const { trail } = await fresh();
    for (let i = 0; i < 1005; i++) trail.record('e', { outcome: 'success' });
    assert.equal((await trail.search({})).records.length, 100);
    assert.equal((await trail.search({ limit: 5000 })).records.length, 1000);
    await assert.rejects(trail.search({ limit: 0 }), AuditQueryError);
    await assert.rejects(trail.search({ limit: 1.5 }), AuditQueryError);
    await assert.rejects(trail.search({ cursor: 'not-a-cursor' }), AuditQueryError);
    await assert.rejects(trail.search({ sub: 42 as unknown as string }), AuditQueryError);
  });

  test('the export is one JSON object per line, the same records as the search, past any page size', async () => {
    const { trail } = await fresh();
    seed(trail);
    const text = (await collect(await trail.exportLines({ sub: 'user-sub-1' }))).join('');
    assert.ok(text.endsWith('\n'));
    const lines = text.split('\n').slice(0, -1);
    assert.deepEqual(
      lines.map((line) => JSON.parse(line)),
      (await trail.search({ sub: 'user-sub-1' })).records,
    );

    for (let i = 0; i < 2500; i++) trail.record('bulk', { outcome: 'success', n: i });
    const all = (await collect(await trail.exportLines({ event: 'bulk' }))).map(
      (line) => JSON.parse(line).fields.n,
    );
    assert.equal(all.length, 2500);
    assert.equal(all[0], 2499);
    assert.equal(all.at(-1), 0);
    assert.equal((await collect(await trail.exportLines({ event: 'bulk', limit: 1200 }))).length, 1200);
    await assert.rejects(trail.exportLines({ limit: -1 }), AuditQueryError);
    await assert.rejects(trail.exportLines({ cursor: '%%%' }), AuditQueryError, 'before any line');
  });

  test('prune deletes what is older than the retention; 0 keeps everything', async () => {
    const now = new Date(Date.UTC(2026, 5, 1));
    const { trail, at } = await fresh(30);
    await at(now.getTime() - 31 * DAY, 'old');
    await at(now.getTime() - 30 * DAY - 1, 'just too old');
    await at(now.getTime() - 29 * DAY, 'recent');
    assert.equal(await trail.prune(now), 2);
    assert.deepEqual(events(await trail.search({})), ['recent']);
    assert.equal(await trail.prune(now), 0);

    const { store } = await fresh();
    const forever = createAuditTrail(store, { retentionDays: 0 });
    await store.append([auditRow('ancient', { outcome: 'success' }, 0)]);
    assert.equal(await forever.prune(now), 0);
    assert.deepEqual(events(await forever.search({ until: 0 })), ['ancient']);
  });

  test('deleteBefore removes more than one chunk and says how many went', async () => {
    const { store } = await fresh();
    const rows = Array.from({ length: 5200 }, (_, i) => auditRow('old', { outcome: 'success' }, 1000 + i));
    await store.append(rows);
    await store.append([auditRow('new', { outcome: 'success' }, 10 * DAY)]);
    assert.equal(await store.deleteBefore(DAY), 5200);
    assert.deepEqual(events(await store.search({})), ['new']);
  });

  test('a batch is written in its order, all or nothing', async () => {
    const { store } = await fresh();
    await store.append(['a', 'b', 'c'].map((event, i) => auditRow(event, { outcome: 'success' }, i)));
    assert.deepEqual(events(await store.search({})), ['c', 'b', 'a']);
    const broken = { ...auditRow('x', { outcome: 'success' }), event: null as unknown as string };
    await assert.rejects(store.append([auditRow('y', { outcome: 'success' }), broken]));
    assert.deepEqual(events(await store.search({})), ['c', 'b', 'a'], 'none of the failed batch');
  });
}

describe('the SQLite audit store', () => {
  auditStoreContract(async () => createSqliteAuditStore(new DatabaseSync(':memory:')));
});

describe('the PostgreSQL audit store', { skip: skipPostgres }, () => {
  let database: TestDatabase;
  let postgres: Postgres;
  before(async () => {
    database = await createTestDatabase();
    postgres = connectPostgres(database.url, { max: 4, acquireTimeoutMs: 2000, statementTimeoutMs: 10_000 });
    await migrate(postgres, POSTGRES_MIGRATIONS);
  });
  after(async () => {
    await postgres?.close();
    await database?.drop();
  });
  beforeEach(async () => {
    await postgres.query('TRUNCATE audit_records');
  });

  auditStoreContract(async () => postgresAuditStore(postgres));

  test('records are append-only: an UPDATE is refused', async () => {
    const store = postgresAuditStore(postgres);
    await store.append([auditRow('login', { outcome: 'success', sub: 'alice' })]);
    await assert.rejects(postgres.query(`UPDATE audit_records SET sub = 'mallory'`), /append-only/);
    assert.equal((await store.search({})).records[0]?.sub, 'alice');
  });

  test('two instances on one database: ids increase across both, one trail sees the other', async () => {
    const other = connectPostgres(database.url, {
      max: 2,
      acquireTimeoutMs: 2000,
      statementTimeoutMs: 10_000,
    });
    try {
      const first = createAuditTrail(postgresAuditStore(postgres), { retentionDays: 1 });
      const second = createAuditTrail(postgresAuditStore(other), { retentionDays: 1 });
      first.record('one', { outcome: 'success' });
      await first.flush();
      second.record('two', { outcome: 'success' });
      await second.flush();
      assert.deepEqual(events(await first.search({})), ['two', 'one']);
    } finally {
      await other.close();
    }
  });
});
