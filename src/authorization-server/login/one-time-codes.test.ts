import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { createOneTimeCodes, type OneTimeCodesOptions } from './one-time-codes.ts';

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-otc-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let dbCount = 0;
let dbPath = '';
let clock = 0;
const secret = randomBytes(32);

const opened: DatabaseSync[] = [];
function open(path = dbPath): DatabaseSync {
  const db = new DatabaseSync(path);
  opened.push(db);
  return db;
}

function codes(db: DatabaseSync, overrides: Partial<OneTimeCodesOptions> = {}) {
  return createOneTimeCodes(db, {
    ttlSeconds: 300,
    maxAttempts: 5,
    perEmail: { max: 100, windowSeconds: 600 },
    perAddress: { max: 100, windowSeconds: 600 },
    secret,
    now: () => clock,
    ...overrides,
  });
}

/** A six-digit string different from `code`. */
const wrong = (code: string) => ((Number(code) + 1) % 1_000_000).toString().padStart(6, '0');

const alice = { loginId: 'login-alice', email: 'alice@example.com', address: '192.0.2.1' };

describe('one-time codes', () => {
  beforeEach(() => {
    dbPath = join(dir, `codes-${++dbCount}.db`);
    clock = 1_700_000_000_000;
  });
  afterEach(() => {
    for (const db of opened.splice(0)) if (db.isOpen) db.close();
  });

  it('issues a six-digit code that verifies once', () => {
    const otc = codes(open());
    const issued = otc.issue(alice);
    assert.equal(issued.status, 'issued');
    assert.ok(issued.status === 'issued');
    assert.match(issued.code, /^\d{6}$/);
    assert.deepEqual(otc.verify({ loginId: alice.loginId, code: issued.code, address: alice.address }), {
      status: 'ok',
      email: 'alice@example.com',
    });
    // Single use: the record is gone.
    assert.deepEqual(otc.verify({ loginId: alice.loginId, code: issued.code, address: alice.address }), {
      status: 'unknown',
    });
  });

  it('accepts a code typed with spaces or a dash, and normalizes the email it returns', () => {
    const otc = codes(open());
    const issued = otc.issue({ ...alice, email: ' Alice@Example.COM' });
    assert.ok(issued.status === 'issued');
    const spaced = `${issued.code.slice(0, 3)} ${issued.code.slice(3)}`;
    assert.deepEqual(otc.verify({ loginId: alice.loginId, code: spaced, address: alice.address }), {
      status: 'ok',
      email: 'alice@example.com',
    });
  });

  it('answers unknown for a login id it never saw', () => {
    const otc = codes(open());
    assert.deepEqual(otc.verify({ loginId: 'nope', code: '123456', address: alice.address }), {
      status: 'unknown',
    });
  });

  it('counts wrong codes down, then locks, after which even the right code fails', () => {
    const otc = codes(open());
    const issued = otc.issue(alice);
    assert.ok(issued.status === 'issued');
    const bad = wrong(issued.code);
    for (const attemptsLeft of [4, 3, 2, 1]) {
      assert.deepEqual(otc.verify({ loginId: alice.loginId, code: bad, address: alice.address }), {
        status: 'invalid',
        attemptsLeft,
      });
    }
    assert.deepEqual(otc.verify({ loginId: alice.loginId, code: bad, address: alice.address }), {
      status: 'locked',
    });
    assert.deepEqual(otc.verify({ loginId: alice.loginId, code: issued.code, address: alice.address }), {
      status: 'locked',
    });
  });

  it('counts malformed input as a wrong try', () => {
    const otc = codes(open());
    otc.issue(alice);
    assert.deepEqual(otc.verify({ loginId: alice.loginId, code: 'abc', address: alice.address }), {
      status: 'invalid',
      attemptsLeft: 4,
    });
  });

  it('replaces the earlier code when a new one is issued for the same login', () => {
    const otc = codes(open());
    const first = otc.issue(alice);
    const second = otc.issue(alice);
    assert.ok(first.status === 'issued' && second.status === 'issued');
    if (first.code !== second.code) {
      assert.deepEqual(otc.verify({ loginId: alice.loginId, code: first.code, address: alice.address }), {
        status: 'invalid',
        attemptsLeft: 4,
      });
    }
    assert.equal(
      otc.verify({ loginId: alice.loginId, code: second.code, address: alice.address }).status,
      'ok',
    );
  });

  it('expires codes after the ttl', () => {
    const otc = codes(open());
    const issued = otc.issue(alice);
    assert.ok(issued.status === 'issued');
    clock += 299_999;
    const other = otc.issue({ ...alice, loginId: 'login-2' });
    assert.ok(other.status === 'issued');
    assert.equal(otc.verify({ loginId: 'login-2', code: other.code, address: alice.address }).status, 'ok');
    clock += 1;
    assert.deepEqual(otc.verify({ loginId: alice.loginId, code: issued.code, address: alice.address }), {
      status: 'expired',
    });
    assert.deepEqual(otc.verify({ loginId: alice.loginId, code: issued.code, address: alice.address }), {
      status: 'unknown',
    });
  });

  it('purges expired records', () => {
    const otc = codes(open());
    otc.issue(alice);
    otc.issue({ ...alice, loginId: 'login-2' });
    clock += 100_000;
    otc.issue({ ...alice, loginId: 'login-3' });
    clock += 250_000;
    assert.equal(otc.purgeExpired(), 2);
    assert.equal(otc.purgeExpired(), 0);
    assert.equal(
      otc.verify({ loginId: 'login-3', code: '000000', address: alice.address }).status,
      'invalid',
    );
  });

  it('throttles per email, across addresses and login ids, until the window slides', () => {
    const otc = codes(open(), { perEmail: { max: 3, windowSeconds: 60 } });
    for (let i = 0; i < 3; i++) {
      assert.equal(otc.issue({ ...alice, loginId: `l${i}`, address: `192.0.2.${i}` }).status, 'issued');
      clock += 10_000;
    }
    // Events at +0s, +10s, +20s; now +30s: the first ages out at +60s, in 30 s.
    assert.deepEqual(otc.issue({ ...alice, loginId: 'l3', address: '192.0.2.99' }), {
      status: 'throttled',
      retryAfterSeconds: 30,
    });
    // Case and spaces do not make a different email.
    assert.equal(otc.issue({ ...alice, email: ' ALICE@example.com', loginId: 'l4' }).status, 'throttled');
    // The refused requests were not counted, and other emails are not affected.
    assert.equal(otc.issue({ ...alice, email: 'bob@example.com', loginId: 'l5' }).status, 'issued');
    clock += 30_000;
    assert.equal(otc.issue({ ...alice, loginId: 'l6' }).status, 'issued');
    assert.equal(otc.issue({ ...alice, loginId: 'l7' }).status, 'throttled');
  });

  it('throttles per source address, across emails', () => {
    const otc = codes(open(), { perAddress: { max: 2, windowSeconds: 120 } });
    assert.equal(otc.issue({ ...alice, email: 'a@example.com', loginId: 'l1' }).status, 'issued');
    assert.equal(otc.issueDecoy({ ...alice, email: 'b@example.com', loginId: 'l2' }).status, 'issued');
    clock += 1_000;
    assert.deepEqual(otc.issue({ ...alice, email: 'c@example.com', loginId: 'l3' }), {
      status: 'throttled',
      retryAfterSeconds: 119,
    });
    assert.equal(
      otc.issue({ ...alice, email: 'c@example.com', loginId: 'l3', address: '192.0.2.2' }).status,
      'issued',
    );
  });

  it('throttles decoys like real codes, per email', () => {
    const otc = codes(open(), { perEmail: { max: 1, windowSeconds: 60 } });
    const mallory = { loginId: 'm1', email: 'mallory@example.org', address: '198.51.100.7' };
    assert.deepEqual(otc.issueDecoy(mallory), { status: 'issued' });
    assert.deepEqual(otc.issueDecoy({ ...mallory, loginId: 'm2' }), {
      status: 'throttled',
      retryAfterSeconds: 60,
    });
  });

  it('never verifies a decoy, and fails it exactly like a real login', () => {
    const db = open();
    const otc = codes(db);
    const real = otc.issue(alice);
    assert.ok(real.status === 'issued');
    assert.deepEqual(otc.issueDecoy({ ...alice, loginId: 'decoy', email: 'mallory@example.org' }), {
      status: 'issued',
    });
    const stored = db.prepare('SELECT email, code_hash FROM login_codes WHERE login_id = ?').get('decoy');
    assert.equal(stored?.email, '', 'an unapproved address is not stored');
    // Whatever is tried, including the real login's code: invalid four times, then locked.
    const tries = [real.code, '000000', '123456', '999999', wrong(real.code)];
    const answers = tries.map((code) => otc.verify({ loginId: 'decoy', code, address: alice.address }));
    const bad = wrong(real.code);
    const realAnswers = tries.map(() =>
      otc.verify({ loginId: alice.loginId, code: bad, address: alice.address }),
    );
    assert.deepEqual(answers, [
      { status: 'invalid', attemptsLeft: 4 },
      { status: 'invalid', attemptsLeft: 3 },
      { status: 'invalid', attemptsLeft: 2 },
      { status: 'invalid', attemptsLeft: 1 },
      { status: 'locked' },
    ]);
    assert.deepEqual(answers, realAnswers);
  });

  it('stores only a MAC of the code', () => {
    const db = open();
    const otc = codes(db);
    const issued = otc.issue(alice);
    assert.ok(issued.status === 'issued');
    const row = db.prepare('SELECT * FROM login_codes WHERE login_id = ?').get(alice.loginId);
    assert.ok(row);
    assert.ok(row.code_hash instanceof Uint8Array);
    assert.equal(row.code_hash.byteLength, 32);
    for (const [column, value] of Object.entries(row)) {
      if (typeof value === 'string') assert.ok(!value.includes(issued.code), column);
      if (value instanceof Uint8Array) {
        assert.ok(!Buffer.from(value).includes(issued.code), column);
        assert.ok(!Buffer.from(value).toString('hex').includes(issued.code), column);
      }
    }
    const throttle = db.prepare('SELECT * FROM login_throttle').all();
    assert.equal(throttle.length, 2);
    assert.ok(!JSON.stringify(throttle).includes('alice'), 'throttle keys are MACs, not addresses');
  });

  it('keeps codes and throttle counters across reopening the database', () => {
    const limits = { perEmail: { max: 1, windowSeconds: 60 } };
    const first = open();
    const issued = codes(first, limits).issue(alice);
    assert.ok(issued.status === 'issued');
    first.close();

    const second = open();
    const otc = codes(second, limits); // creating the tables again must be harmless
    assert.equal(otc.issue({ ...alice, loginId: 'other' }).status, 'throttled');
    assert.deepEqual(otc.verify({ loginId: alice.loginId, code: issued.code, address: alice.address }), {
      status: 'ok',
      email: alice.email,
    });
    second.close();
  });

  it('does not verify with another secret', () => {
    const db = open();
    const issued = codes(db).issue(alice);
    assert.ok(issued.status === 'issued');
    const otc = codes(db, { secret: randomBytes(32) });
    assert.equal(
      otc.verify({ loginId: alice.loginId, code: issued.code, address: alice.address }).status,
      'invalid',
    );
  });

  it('rejects unsafe options', () => {
    const db = open();
    assert.throws(() => codes(db, { secret: randomBytes(16) }), /32 bytes/);
    assert.throws(() => codes(db, { maxAttempts: 0 }), /maxAttempts/);
    assert.throws(() => codes(db, { perEmail: { max: 0, windowSeconds: 60 } }), /perEmail/);
    assert.throws(() => codes(db).issue({ ...alice, loginId: '' }), /loginId/);
  });
});
