/**
 * The one-time codes' contract (one-time-codes.ts), one suite run against each store: SQLite and
 * PostgreSQL must issue, verify, throttle and lock alike. PostgreSQL runs where a server is
 * reachable (test/helpers/postgres.ts); in CI it must be. Its own tests add what only several
 * instances can break: concurrent tries from two pools stay within the limits in total.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import {
  createTestDatabase,
  skipWithoutPostgres,
  type TestDatabase,
} from '../../../test/helpers/postgres.ts';
import { connectPostgres, type Postgres } from '../store/postgres/connection.ts';
import { migrate } from '../store/postgres/migrations.ts';
import { POSTGRES_MIGRATIONS } from '../store/postgres/schema.ts';
import type { OneTimeCodes, OneTimeCodesOptions } from './one-time-codes.ts';
import { postgresOneTimeCodes } from './postgres-one-time-codes.ts';
import { createSqliteOneTimeCodes } from './sqlite-one-time-codes.ts';

// Before any test is declared: the runner starts the file's tests once its first ones are in.
const skipPostgres = await skipWithoutPostgres();

let clock = 0;
const secret = randomBytes(32);

const settings = (overrides: Partial<OneTimeCodesOptions> = {}): OneTimeCodesOptions => ({
  ttlSeconds: 300,
  maxAttempts: 5,
  perEmail: { max: 100, windowSeconds: 600 },
  perAddress: { max: 100, windowSeconds: 600 },
  secret,
  now: () => clock,
  ...overrides,
});

/** One test's storage, for the contract. */
interface Backend {
  /** One-time codes on this storage (another instance, or the same after a restart). */
  codes(overrides?: Partial<OneTimeCodesOptions>): OneTimeCodes;
  /** The stored rows of a table, to see what is kept. */
  rows(table: 'login_codes' | 'login_throttle'): Promise<Array<Record<string, unknown>>>;
  /** Closes the connection and opens a new one on the same storage. */
  reopen(): Promise<void>;
}

/** A six-digit string different from `code`. */
const wrong = (code: string) => ((Number(code) + 1) % 1_000_000).toString().padStart(6, '0');

const alice = { loginId: 'login-alice', email: 'alice@example.com', address: '192.0.2.1' };

async function issued(otc: OneTimeCodes, input = alice): Promise<string> {
  const result = await otc.issue(input);
  assert.ok(result.status === 'issued', JSON.stringify(result));
  return result.code;
}

function oneTimeCodesContract(backend: () => Backend): void {
  beforeEach(() => {
    clock = 1_700_000_000_000;
  });

  it('issues a six-digit code that verifies once', async () => {
    const otc = backend().codes();
    const code = await issued(otc);
    assert.match(code, /^\d{6}$/);
    assert.deepEqual(await otc.verify({ loginId: alice.loginId, code, address: alice.address }), {
      status: 'ok',
      email: 'alice@example.com',
    });
    // Single use: the record is gone.
    assert.deepEqual(await otc.verify({ loginId: alice.loginId, code, address: alice.address }), {
      status: 'unknown',
    });
  });

  it('accepts a code typed with spaces or a dash, and normalizes the email it returns', async () => {
    const otc = backend().codes();
    const code = await issued(otc, { ...alice, email: ' Alice@Example.COM' });
    const spaced = `${code.slice(0, 3)} ${code.slice(3)}`;
    assert.deepEqual(await otc.verify({ loginId: alice.loginId, code: spaced, address: alice.address }), {
      status: 'ok',
      email: 'alice@example.com',
    });
  });

  it('answers unknown for a login id it never saw', async () => {
    const otc = backend().codes();
    assert.deepEqual(await otc.verify({ loginId: 'nope', code: '123456', address: alice.address }), {
      status: 'unknown',
    });
  });

  it('counts wrong codes down, then locks, after which even the right code fails', async () => {
    const otc = backend().codes();
    const code = await issued(otc);
    const bad = wrong(code);
    for (const attemptsLeft of [4, 3, 2, 1]) {
      assert.deepEqual(await otc.verify({ loginId: alice.loginId, code: bad, address: alice.address }), {
        status: 'invalid',
        attemptsLeft,
      });
    }
    assert.deepEqual(await otc.verify({ loginId: alice.loginId, code: bad, address: alice.address }), {
      status: 'locked',
    });
    assert.deepEqual(await otc.verify({ loginId: alice.loginId, code, address: alice.address }), {
      status: 'locked',
    });
    // Locked and then expired: still locked once, then gone.
    clock += 300_000;
    assert.deepEqual(await otc.verify({ loginId: alice.loginId, code, address: alice.address }), {
      status: 'locked',
    });
    assert.deepEqual(await otc.verify({ loginId: alice.loginId, code, address: alice.address }), {
      status: 'unknown',
    });
  });

  it('the right code on the last attempt still signs in', async () => {
    const otc = backend().codes({ maxAttempts: 2 });
    const code = await issued(otc);
    assert.deepEqual(
      await otc.verify({ loginId: alice.loginId, code: wrong(code), address: alice.address }),
      {
        status: 'invalid',
        attemptsLeft: 1,
      },
    );
    assert.equal((await otc.verify({ loginId: alice.loginId, code, address: alice.address })).status, 'ok');
  });

  it('counts malformed input as a wrong try', async () => {
    const otc = backend().codes();
    await issued(otc);
    assert.deepEqual(await otc.verify({ loginId: alice.loginId, code: 'abc', address: alice.address }), {
      status: 'invalid',
      attemptsLeft: 4,
    });
  });

  it('replaces the earlier code when a new one is issued for the same login', async () => {
    const otc = backend().codes();
    const first = await issued(otc);
    const second = await issued(otc);
    if (first !== second) {
      assert.deepEqual(await otc.verify({ loginId: alice.loginId, code: first, address: alice.address }), {
        status: 'invalid',
        attemptsLeft: 4,
      });
    }
    assert.equal(
      (await otc.verify({ loginId: alice.loginId, code: second, address: alice.address })).status,
      'ok',
    );
  });

  it('expires codes after the ttl', async () => {
    const otc = backend().codes();
    const code = await issued(otc);
    clock += 299_999;
    const other = await issued(otc, { ...alice, loginId: 'login-2' });
    assert.equal(
      (await otc.verify({ loginId: 'login-2', code: other, address: alice.address })).status,
      'ok',
    );
    clock += 1;
    assert.deepEqual(await otc.verify({ loginId: alice.loginId, code, address: alice.address }), {
      status: 'expired',
    });
    assert.deepEqual(await otc.verify({ loginId: alice.loginId, code, address: alice.address }), {
      status: 'unknown',
    });
  });

  it('purges expired records', async () => {
    const otc = backend().codes();
    await otc.issue(alice);
    await otc.issue({ ...alice, loginId: 'login-2' });
    clock += 100_000;
    await otc.issue({ ...alice, loginId: 'login-3' });
    clock += 250_000;
    assert.equal(await otc.purgeExpired(), 2);
    assert.equal(await otc.purgeExpired(), 0);
    assert.equal(
      (await otc.verify({ loginId: 'login-3', code: '000000', address: alice.address })).status,
      'invalid',
    );
  });

  it('purges throttle events older than the longest window', async () => {
    const store = backend();
    const otc = store.codes({
      perEmail: { max: 5, windowSeconds: 60 },
      perAddress: { max: 5, windowSeconds: 120 },
    });
    await otc.issue(alice);
    clock += 60_000;
    await otc.issue({ ...alice, loginId: 'login-2' });
    clock += 60_000;
    await otc.purgeExpired();
    assert.equal((await store.rows('login_throttle')).length, 2, 'the second issue is within 120 s');
  });

  it('throttles per email, across addresses and login ids, until the window slides', async () => {
    const otc = backend().codes({ perEmail: { max: 3, windowSeconds: 60 } });
    for (let i = 0; i < 3; i++) {
      assert.equal(
        (await otc.issue({ ...alice, loginId: `l${i}`, address: `192.0.2.${i}` })).status,
        'issued',
      );
      clock += 10_000;
    }
    // Events at +0s, +10s, +20s; now +30s: the first ages out at +60s, in 30 s.
    assert.deepEqual(await otc.issue({ ...alice, loginId: 'l3', address: '192.0.2.99' }), {
      status: 'throttled',
      retryAfterSeconds: 30,
    });
    // Case and spaces do not make a different email.
    assert.equal(
      (await otc.issue({ ...alice, email: ' ALICE@example.com', loginId: 'l4' })).status,
      'throttled',
    );
    // The refused requests were not counted, and other emails are not affected.
    assert.equal((await otc.issue({ ...alice, email: 'bob@example.com', loginId: 'l5' })).status, 'issued');
    clock += 30_000;
    assert.equal((await otc.issue({ ...alice, loginId: 'l6' })).status, 'issued');
    assert.equal((await otc.issue({ ...alice, loginId: 'l7' })).status, 'throttled');
  });

  it('throttles per source address, across emails', async () => {
    const otc = backend().codes({ perAddress: { max: 2, windowSeconds: 120 } });
    assert.equal((await otc.issue({ ...alice, email: 'a@example.com', loginId: 'l1' })).status, 'issued');
    assert.equal(
      (await otc.issueDecoy({ ...alice, email: 'b@example.com', loginId: 'l2' })).status,
      'issued',
    );
    clock += 1_000;
    assert.deepEqual(await otc.issue({ ...alice, email: 'c@example.com', loginId: 'l3' }), {
      status: 'throttled',
      retryAfterSeconds: 119,
    });
    assert.equal(
      (await otc.issue({ ...alice, email: 'c@example.com', loginId: 'l3', address: '192.0.2.2' })).status,
      'issued',
    );
  });

  it('throttles decoys like real codes, per email', async () => {
    const otc = backend().codes({ perEmail: { max: 1, windowSeconds: 60 } });
    const mallory = { loginId: 'm1', email: 'mallory@example.org', address: '198.51.100.7' };
    assert.deepEqual(await otc.issueDecoy(mallory), { status: 'issued' });
    assert.deepEqual(await otc.issueDecoy({ ...mallory, loginId: 'm2' }), {
      status: 'throttled',
      retryAfterSeconds: 60,
    });
  });

  it('never verifies a decoy, and fails it exactly like a real login', async () => {
    const store = backend();
    const otc = store.codes();
    const real = await issued(otc);
    assert.deepEqual(await otc.issueDecoy({ ...alice, loginId: 'decoy', email: 'mallory@example.org' }), {
      status: 'issued',
    });
    const stored = (await store.rows('login_codes')).find((row) => row.login_id === 'decoy');
    assert.equal(stored?.email, '', 'an unapproved address is not stored');
    // Whatever is tried, including the real login's code: invalid four times, then locked.
    const tries = [real, '000000', '123456', '999999', wrong(real)];
    const answers = [];
    for (const code of tries)
      answers.push(await otc.verify({ loginId: 'decoy', code, address: alice.address }));
    const bad = wrong(real);
    const realAnswers = [];
    for (const _ of tries)
      realAnswers.push(await otc.verify({ loginId: alice.loginId, code: bad, address: alice.address }));
    assert.deepEqual(answers, [
      { status: 'invalid', attemptsLeft: 4 },
      { status: 'invalid', attemptsLeft: 3 },
      { status: 'invalid', attemptsLeft: 2 },
      { status: 'invalid', attemptsLeft: 1 },
      { status: 'locked' },
    ]);
    assert.deepEqual(answers, realAnswers);
  });

  it('stores only a MAC of the code', async () => {
    const store = backend();
    const code = await issued(store.codes());
    const [row] = await store.rows('login_codes');
    assert.ok(row);
    assert.ok(row.code_hash instanceof Uint8Array);
    assert.equal(row.code_hash.byteLength, 32);
    for (const [column, value] of Object.entries(row)) {
      if (typeof value === 'string') assert.ok(!value.includes(code), column);
      if (value instanceof Uint8Array) {
        assert.ok(!Buffer.from(value).includes(code), column);
        assert.ok(!Buffer.from(value).toString('hex').includes(code), column);
      }
    }
    const throttle = await store.rows('login_throttle');
    assert.equal(throttle.length, 2);
    assert.ok(!JSON.stringify(throttle).includes('alice'), 'throttle keys are MACs, not addresses');
  });

  it('keeps codes and throttle counters across reopening the store', async () => {
    const store = backend();
    const limits = { perEmail: { max: 1, windowSeconds: 60 } };
    const code = await issued(store.codes(limits));
    await store.reopen();
    const otc = store.codes(limits);
    assert.equal((await otc.issue({ ...alice, loginId: 'other' })).status, 'throttled');
    assert.deepEqual(await otc.verify({ loginId: alice.loginId, code, address: alice.address }), {
      status: 'ok',
      email: alice.email,
    });
  });

  it('does not verify with another secret', async () => {
    const store = backend();
    const code = await issued(store.codes());
    const otc = store.codes({ secret: randomBytes(32) });
    assert.equal(
      (await otc.verify({ loginId: alice.loginId, code, address: alice.address })).status,
      'invalid',
    );
  });

  it('rejects unsafe options', async () => {
    const store = backend();
    assert.throws(() => store.codes({ secret: randomBytes(16) }), /32 bytes/);
    assert.throws(() => store.codes({ maxAttempts: 0 }), /maxAttempts/);
    assert.throws(() => store.codes({ perEmail: { max: 0, windowSeconds: 60 } }), /perEmail/);
    await assert.rejects(store.codes().issue({ ...alice, loginId: '' }), /loginId/);
  });
}

describe('one-time codes in SQLite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-otc-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let count = 0;
  let current: { path: string; db: DatabaseSync } | undefined;
  const opened: DatabaseSync[] = [];
  const open = (path: string) => {
    const db = new DatabaseSync(path);
    opened.push(db);
    return db;
  };
  beforeEach(() => {
    const path = join(dir, `codes-${++count}.db`);
    current = { path, db: open(path) };
  });
  afterEach(() => {
    for (const db of opened.splice(0)) if (db.isOpen) db.close();
  });
  oneTimeCodesContract(() => ({
    codes: (overrides) => createSqliteOneTimeCodes(current!.db, settings(overrides)),
    rows: async (table) => current!.db.prepare(`SELECT * FROM ${table}`).all(),
    reopen: async () => {
      current!.db.close();
      // Creating the tables again must be harmless.
      current = { path: current!.path, db: open(current!.path) };
    },
  }));
});

describe('one-time codes in PostgreSQL', { skip: skipPostgres }, () => {
  let database: TestDatabase;
  let postgres: Postgres;
  const pool = () =>
    connectPostgres(database.url, { max: 4, acquireTimeoutMs: 5000, statementTimeoutMs: 10_000 });
  before(async () => {
    database = await createTestDatabase();
    postgres = pool();
    await migrate(postgres, POSTGRES_MIGRATIONS);
  });
  after(async () => {
    await postgres?.close();
    await database?.drop();
  });
  beforeEach(async () => {
    await postgres.query('TRUNCATE login_codes, login_throttle');
  });

  oneTimeCodesContract(() => ({
    codes: (overrides) => postgresOneTimeCodes(postgres, settings(overrides)),
    rows: (table) => postgres.query(`SELECT * FROM ${table}`),
    reopen: async () => {
      await postgres.close();
      postgres = pool();
    },
  }));

  describe('two instances, concurrently', () => {
    let other: Postgres;
    beforeEach(() => {
      clock = 1_700_000_000_000;
      other = pool();
    });
    afterEach(async () => {
      await other.close();
    });

    it('wrong codes tried at both at once: maxAttempts in total, then locked everywhere', async () => {
      const first = postgresOneTimeCodes(postgres, settings());
      const second = postgresOneTimeCodes(other, settings());
      const code = await issued(first);
      const bad = wrong(code);
      const answers = await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          (i % 2 === 0 ? first : second).verify({
            loginId: alice.loginId,
            code: bad,
            address: alice.address,
          }),
        ),
      );
      const invalid = answers.filter((answer) => answer.status === 'invalid');
      const locked = answers.filter((answer) => answer.status === 'locked');
      // Five attempts in all: four answered "invalid" (4, 3, 2, 1 left, each once), the rest "locked".
      assert.deepEqual(
        invalid.map((answer) => (answer.status === 'invalid' ? answer.attemptsLeft : 0)).sort(),
        [1, 2, 3, 4],
      );
      assert.equal(locked.length, 20);
      assert.deepEqual(await second.verify({ loginId: alice.loginId, code, address: alice.address }), {
        status: 'locked',
      });
    });

    it('the right code sent to both at once signs in once', async () => {
      const first = postgresOneTimeCodes(postgres, settings());
      const second = postgresOneTimeCodes(other, settings());
      const code = await issued(second);
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          (i % 2 === 0 ? first : second).verify({ loginId: alice.loginId, code, address: alice.address }),
        ),
      );
      assert.equal(answers.filter((answer) => answer.status === 'ok').length, 1);
    });

    it('codes requested at both at once: the email throttle holds in total', async () => {
      const limits = { perEmail: { max: 3, windowSeconds: 600 } };
      const first = postgresOneTimeCodes(postgres, settings(limits));
      const second = postgresOneTimeCodes(other, settings(limits));
      const answers = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          (i % 2 === 0 ? first : second).issue({ ...alice, loginId: `l${i}`, address: `192.0.2.${i}` }),
        ),
      );
      assert.equal(answers.filter((answer) => answer.status === 'issued').length, 3);
      assert.equal(answers.filter((answer) => answer.status === 'throttled').length, 9);
    });

    it('a code issued at one instance verifies at the other', async () => {
      const code = await issued(postgresOneTimeCodes(postgres, settings()));
      assert.deepEqual(
        await postgresOneTimeCodes(other, settings()).verify({
          loginId: alice.loginId,
          code,
          address: alice.address,
        }),
        { status: 'ok', email: alice.email },
      );
    });
  });
});
