/**
 * The trail itself over a store: redaction, group commit, failures. What a store finds and how it
 * pages is the contract suite's (audit-store.test.ts), run against SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { describe, test } from 'node:test';
import { createLogger, type Logger } from '../../shared/logging.ts';
import { requestWritesDurable, withRequestWrites } from '../store/sqlite-write-batch.ts';
import type { AuditRow, AuditStore } from './audit-store.ts';
import { createAuditTrail, recordAudits } from './audit-trail.ts';
import { createSqliteAuditStore } from './sqlite-audit-store.ts';

function fresh(retentionDays = 90) {
  const db = new DatabaseSync(':memory:');
  const lines: string[] = [];
  const logger = createLogger('test', { write: (line) => lines.push(line) });
  const trail = createAuditTrail(createSqliteAuditStore(db), { retentionDays, logger });
  return { db, trail, lines };
}

const errorsIn = (lines: string[]) =>
  lines.map((line) => JSON.parse(line)).filter((line) => line.level === 'error');

describe('the audit trail', () => {
  test('refuses a retention that is not a whole number of days', () => {
    assert.throws(() =>
      createAuditTrail(createSqliteAuditStore(new DatabaseSync(':memory:')), { retentionDays: -1 }),
    );
  });

  test('never keeps a token, code or secret: by field name, at any depth, or by the look of the value', async () => {
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
    await trail.flush();
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
    const [record] = (await trail.search({})).records;
    assert.equal(record?.fields.access_token, '[redacted]');
    assert.equal(record?.fields.header, '[redacted]');
    assert.equal(record?.fields.url, 'https://rp.example/cb');
    assert.equal(record?.scope, '[redacted]');
    // Ordinary words are kept.
    assert.equal(record?.fields.reason, 'basic checks failed');
  });

  test('a record that cannot be made is logged, not thrown', async () => {
    const { trail, lines } = fresh();
    const cycle: Record<string, unknown> = { outcome: 'success' };
    cycle.self = cycle;
    trail.record('weird', cycle);
    trail.record('big', { outcome: 'success', n: 10n });
    assert.deepEqual((await trail.search({})).records, []);
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
      append: async (rows) => {
        appended.push(rows.length);
        await store.append(rows);
      },
    };
    const trail = createAuditTrail(counting, { retentionDays: 1 });
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
      append: async () => {
        throw new Error('disk I/O error');
      },
    };
    const trail = createAuditTrail(failing, { retentionDays: 1, logger });
    await withRequestWrites(async () => {
      trail.record('token.issued', { outcome: 'success' });
      await requestWritesDurable();
    });
    const errors = errorsIn(lines);
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

  test('a failed batch is logged and the batches after it are still written, in order', async () => {
    const lines: string[] = [];
    const logger = createLogger('test', { write: (line) => lines.push(line) });
    const store = createSqliteAuditStore(new DatabaseSync(':memory:'));
    let failNext = true;
    const flaky: AuditStore = {
      ...store,
      append: async (rows: readonly AuditRow[]) => {
        if (failNext) {
          failNext = false;
          throw new Error('connection terminated');
        }
        await store.append(rows);
      },
    };
    const trail = createAuditTrail(flaky, { retentionDays: 1, logger });
    trail.record('lost', { outcome: 'success' });
    await new Promise((resolve) => setImmediate(resolve));
    trail.record('kept-1', { outcome: 'success' });
    await new Promise((resolve) => setImmediate(resolve));
    trail.record('kept-2', { outcome: 'success' });
    await trail.flush();
    assert.deepEqual(
      (await trail.search({})).records.map((r) => r.event),
      ['kept-2', 'kept-1'],
    );
    const errors = errorsIn(lines);
    assert.equal(errors.length, 1, 'the lost batch is said, once');
    assert.deepEqual(errors[0].events, ['lost']);
    assert.equal(errors[0].records, 1);
  });

  test('flush waits for the write under way and for the records made meanwhile (close)', async () => {
    const store = createSqliteAuditStore(new DatabaseSync(':memory:'));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let written = 0;
    const slow: AuditStore = {
      ...store,
      append: async (rows: readonly AuditRow[]) => {
        await gate;
        await store.append(rows);
        written += rows.length;
      },
    };
    const trail = createAuditTrail(slow, { retentionDays: 1 });
    trail.record('first', { outcome: 'success' });
    await new Promise((resolve) => setImmediate(resolve));
    trail.record('second', { outcome: 'success' });
    let flushed = false;
    const flushing = trail.flush().then(() => {
      flushed = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(flushed, false, 'the write under way is awaited');
    release();
    await flushing;
    assert.equal(written, 2, 'both batches are written before flush settles');
  });

  test('a batch past the size limit is written at once, the rest after the turn', async () => {
    const store = createSqliteAuditStore(new DatabaseSync(':memory:'));
    const sizes: number[] = [];
    const trail = createAuditTrail(
      {
        ...store,
        append: async (rows: readonly AuditRow[]) => {
          sizes.push(rows.length);
          await store.append(rows);
        },
      },
      { retentionDays: 1 },
    );
    for (let i = 0; i < 300; i++) trail.record('e', { outcome: 'success' });
    await trail.flush();
    assert.deepEqual(sizes, [256, 44]);
  });
});

describe('recordAudits', () => {
  test('keeps every audit line of the logger and its children, and still logs it', async () => {
    const { trail } = fresh();
    const lines: string[] = [];
    const logger: Logger = recordAudits(createLogger('as', { write: (line) => lines.push(line) }), trail);
    logger.audit('login', { outcome: 'success', sub: 's' });
    logger.child({ part: 'mail' }).child({ step: 2 }).audit('login.code', { outcome: 'denied' });
    logger.info('not an audit event');
    assert.equal(lines.length, 3);
    const records = (await trail.search({})).records;
    assert.deepEqual(
      records.map((r) => [r.event, r.outcome, r.fields]),
      [
        ['login.code', 'denied', { part: 'mail', step: 2 }],
        ['login', 'success', {}],
      ],
    );
  });
});
