import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { describe, test } from 'node:test';
import { createLogger, type Logger } from '../../shared/logging.ts';
import { requestWritesDurable, withRequestWrites } from '../store/sqlite-write-batch.ts';
import type { AuditStore } from './audit-store.ts';
import {
  AuditQueryError,
  type AuditTrail,
  auditRow,
  auditTrailOver,
  createAuditTrail,
  recordAudits,
} from './audit-trail.ts';
import { createSqliteAuditStore } from './sqlite-audit-store.ts';

const DAY = 86_400_000;

function fresh(retentionDays = 90) {
  const db = new DatabaseSync(':memory:');
  const lines: string[] = [];
  const logger = createLogger('test', { write: (line) => lines.push(line) });
  const trail = createAuditTrail(db, { retentionDays, logger });
  return { db, trail, lines };
}

/** A trail whose records carry the times given (the trail itself stamps `Date.now()`). */
function withTimes(retentionDays = 90) {
  const db = new DatabaseSync(':memory:');
  const store = createSqliteAuditStore(db);
  const trail = auditTrailOver(store, { retentionDays });
  const at = (ms: number, event: string, fields: Record<string, unknown> = {}) =>
    store.append([auditRow(event, { outcome: 'success', ...fields }, ms)]);
  return { db, trail, at };
}

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

describe('the audit trail', () => {
  test('a record keeps the searchable fields as columns and everything else in fields', () => {
    const { trail } = fresh();
    trail.record('token.exchange', exchange);
    const [record] = trail.search({}).records;
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

  test('searches by each field, the filters combined', () => {
    const { trail } = fresh();
    seed(trail);
    assert.deepEqual(events(trail.search({ sub: 'user-sub-1' })), [
      'token.exchange',
      'token.exchange',
      'token.issued',
      'consent',
    ]);
    assert.deepEqual(events(trail.search({ clientId: 'other-client' })), ['login']);
    assert.deepEqual(
      trail.search({ tool: 'get_customer' }).records.map((r) => r.request_id),
      ['req-00000002'],
    );
    assert.deepEqual(
      trail.search({ api: 'http://localhost:8000/api/stocks' }).records.map((r) => r.tool),
      ['get_stock'],
    );
    assert.deepEqual(events(trail.search({ event: 'consent' })), ['consent']);
    assert.deepEqual(events(trail.search({ outcome: 'failure' })), ['login']);
    assert.deepEqual(events(trail.search({ outcome: 'denied', event: 'token.exchange' })), [
      'token.exchange',
    ]);
    assert.deepEqual(
      trail.search({ requestId: 'req-00000001' }).records.map((r) => r.tool),
      ['get_stock'],
    );
    // The consent and the tool calls that rest on it.
    assert.deepEqual(events(trail.search({ grantId: 'grant-1' })), [
      'token.exchange',
      'token.exchange',
      'consent',
    ]);
    assert.deepEqual(trail.search({ sub: 'nobody' }).records, []);
  });

  test('a time range is inclusive at both ends, to the second', () => {
    const { trail, at } = withTimes();
    const base = Date.UTC(2026, 0, 10);
    at(base - 1, 'before');
    at(base, 'first');
    at(base + 5_000, 'middle');
    at(base + 10_999, 'last');
    at(base + 11_000, 'after');
    const s = base / 1000;
    assert.deepEqual(events(trail.search({ since: s, until: s + 10 })), ['last', 'middle', 'first']);
    assert.deepEqual(events(trail.search({ since: s + 11 })), ['after']);
    assert.deepEqual(events(trail.search({ until: s - 1 })), ['before']);
    assert.throws(() => trail.search({ since: Number.NaN }), AuditQueryError);
  });

  test('pages newest first with cursors, stable while records are added', () => {
    const { trail } = fresh();
    for (let i = 0; i < 25; i++) trail.record('e', { outcome: 'success', n: i });
    const n = (result: { records: Array<{ fields: Record<string, unknown> }> }) =>
      result.records.map((r) => r.fields.n);
    const first = trail.search({ limit: 10 });
    assert.deepEqual(n(first), [24, 23, 22, 21, 20, 19, 18, 17, 16, 15]);
    assert.ok(first.nextCursor);
    // Newer records never shift a page that follows, nor repeat a record.
    for (let i = 25; i < 30; i++) trail.record('e', { outcome: 'success', n: i });
    const second = trail.search({ limit: 10, cursor: first.nextCursor });
    assert.deepEqual(n(second), [14, 13, 12, 11, 10, 9, 8, 7, 6, 5]);
    const third = trail.search({ limit: 10, cursor: second.nextCursor! });
    assert.deepEqual(n(third), [4, 3, 2, 1, 0]);
    assert.equal(third.nextCursor, undefined);
    // A filtered page pages the same way.
    const filtered = trail.search({ event: 'e', limit: 29 });
    assert.ok(filtered.nextCursor);
    assert.deepEqual(n(trail.search({ event: 'e', cursor: filtered.nextCursor })), [0]);
  });

  test('a page is 100 records unless asked, at most 1000; a bad limit or cursor is refused', () => {
    const { trail } = fresh();
    for (let i = 0; i < 1005; i++) trail.record('e', { outcome: 'success' });
    assert.equal(trail.search({}).records.length, 100);
    assert.equal(trail.search({ limit: 5000 }).records.length, 1000);
    assert.throws(() => trail.search({ limit: 0 }), AuditQueryError);
    assert.throws(() => trail.search({ limit: 1.5 }), AuditQueryError);
    assert.throws(() => trail.search({ cursor: 'not-a-cursor' }), AuditQueryError);
    assert.throws(() => trail.search({ sub: 42 as unknown as string }), AuditQueryError);
  });

  test('the export is one JSON object per line, the same records as the search, past any page size', () => {
    const { trail } = fresh();
    seed(trail);
    const text = [...trail.exportLines({ sub: 'user-sub-1' })].join('');
    assert.ok(text.endsWith('\n'));
    const lines = text.split('\n').slice(0, -1);
    assert.deepEqual(
      lines.map((line) => JSON.parse(line)),
      trail.search({ sub: 'user-sub-1' }).records,
    );

    for (let i = 0; i < 2500; i++) trail.record('bulk', { outcome: 'success', n: i });
    const all = [...trail.exportLines({ event: 'bulk' })].map((line) => JSON.parse(line).fields.n);
    assert.equal(all.length, 2500);
    assert.equal(all[0], 2499);
    assert.equal(all.at(-1), 0);
    assert.equal([...trail.exportLines({ event: 'bulk', limit: 1200 })].length, 1200);
    assert.throws(() => trail.exportLines({ limit: -1 }), AuditQueryError);
    assert.throws(() => trail.exportLines({ cursor: '%%%' }), AuditQueryError, 'before any line');
  });

  test('prune deletes what is older than the retention; 0 keeps everything', () => {
    const now = new Date(Date.UTC(2026, 5, 1));
    const { trail, at } = withTimes(30);
    at(now.getTime() - 31 * DAY, 'old');
    at(now.getTime() - 30 * DAY - 1, 'just too old');
    at(now.getTime() - 29 * DAY, 'recent');
    assert.equal(trail.prune(now), 2);
    assert.deepEqual(events(trail.search({})), ['recent']);
    assert.equal(trail.prune(now), 0);

    const forever = withTimes(0);
    forever.at(0, 'ancient');
    assert.equal(forever.trail.prune(now), 0);
    assert.deepEqual(events(forever.trail.search({})), ['ancient']);
    assert.throws(() => createAuditTrail(new DatabaseSync(':memory:'), { retentionDays: -1 }));
  });

  test('never keeps a token, code or secret: by field name, at any depth, or by the look of the value', () => {
    const { trail, db } = fresh();
    trail.record('token.issued', {
      outcome: 'success',
      access_token: 'opaque-token-value-1',
      code: 'authorization-code-1',
      client_secret: 'the-client-secret-1',
      nested: { refreshToken: 'refresh-token-value-1', list: [{ password: 'hunter2-password' }] },
      header: 'Bearer abcdefghijklmnopqrstuvwxyz0123',
      note: 'sent DPoP eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl',
      jwtLike: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ5In0.sig',
      url: new URL('https://rp.example/cb?code=query-code-1#x'),
      // A column too: a credential in `scope` is not kept.
      scope: 'Basic dXNlcjpwYXNzd29yZC1mb3ItdGVzdA==',
      reason: 'basic checks failed',
    });
    const dump = JSON.stringify(db.prepare('SELECT * FROM audit_records').all());
    for (const secret of [
      'opaque-token-value-1',
      'authorization-code-1',
      'the-client-secret-1',
      'refresh-token-value-1',
      'hunter2-password',
      'abcdefghijklmnopqrstuvwxyz0123',
      'eyJhbGciOiJFUzI1NiJ9',
      'eyJhbGciOiJSUzI1NiJ9',
      'query-code-1',
      'dXNlcjpwYXNzd29yZC1mb3ItdGVzdA',
    ]) {
      assert.ok(!dump.includes(secret), `${secret} is not stored`);
    }
    const [record] = trail.search({}).records;
    assert.equal(record?.fields.access_token, '[redacted]');
    assert.equal(record?.fields.header, '[redacted]');
    assert.equal(record?.fields.url, 'https://rp.example/cb');
    assert.equal(record?.scope, '[redacted]');
    // Ordinary words are kept.
    assert.equal(record?.fields.reason, 'basic checks failed');
  });

  test('a record that cannot be made is logged, not thrown', () => {
    const { trail, lines } = fresh();
    const cycle: Record<string, unknown> = { outcome: 'success' };
    cycle.self = cycle;
    trail.record('weird', cycle);
    trail.record('big', { outcome: 'success', n: 10n });
    assert.deepEqual(trail.search({}).records, []);
    assert.equal(lines.filter((line) => line.includes('audit record could not be made')).length, 2);
  });
});

describe('audit writes and the request they belong to', () => {
  test("are grouped in one transaction per turn, and the request's answer waits for their commit", async () => {
    const db = new DatabaseSync(':memory:');
    const store = createSqliteAuditStore(db);
    const appended: number[] = [];
    const counting: AuditStore = {
      ...store,
      append: (rows) => {
        appended.push(rows.length);
        store.append(rows);
      },
    };
    const trail = auditTrailOver(counting, { retentionDays: 1 });
    await withRequestWrites(async () => {
      trail.record('a', { outcome: 'success' });
      trail.record('b', { outcome: 'success' });
      assert.deepEqual(appended, [], 'not written synchronously');
      await requestWritesDurable();
      assert.deepEqual(appended, [2], 'one transaction, committed before the answer');
    });
  });

  test('a failed write is logged as an error and never fails the answer', async () => {
    const lines: string[] = [];
    const logger = createLogger('test', { write: (line) => lines.push(line) });
    const failing: AuditStore = {
      ...createSqliteAuditStore(new DatabaseSync(':memory:')),
      append: () => {
        throw new Error('disk I/O error');
      },
    };
    const trail = auditTrailOver(failing, { retentionDays: 1, logger });
    await withRequestWrites(async () => {
      trail.record('token.issued', { outcome: 'success' });
      await requestWritesDurable();
    });
    const errors = lines.map((line) => JSON.parse(line)).filter((line) => line.level === 'error');
    assert.equal(errors.length, 1);
    assert.match(errors[0].message, /audit records could not be written/);
    assert.deepEqual(errors[0].events, ['token.issued']);
  });

  test('outside a request the records are still written after the turn', async () => {
    const { trail, db } = fresh();
    trail.record('client.removed', { outcome: 'success', client_id: 'c' });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(Number(db.prepare('SELECT count(*) AS n FROM audit_records').get()?.n), 1);
  });
});

describe('recordAudits', () => {
  test('keeps every audit line of the logger and its children, and still logs it', () => {
    const { trail } = fresh();
    const lines: string[] = [];
    const logger: Logger = recordAudits(createLogger('as', { write: (line) => lines.push(line) }), trail);
    logger.audit('login', { outcome: 'success', sub: 's' });
    logger.child({ part: 'mail' }).child({ step: 2 }).audit('login.code', { outcome: 'denied' });
    logger.info('not an audit event');
    assert.equal(lines.length, 3);
    const records = trail.search({}).records;
    assert.deepEqual(
      records.map((r) => [r.event, r.outcome, r.fields]),
      [
        ['login.code', 'denied', { part: 'mail', step: 2 }],
        ['login', 'success', {}],
      ],
    );
  });
});
