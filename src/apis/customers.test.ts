import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { findOwnRecord } from './customers.ts';
import { CUSTOMERS, type CustomerRecord } from './customers-data.ts';

describe('findOwnRecord', () => {
  test('matches a verified email, ignoring case', () => {
    assert.equal(
      findOwnRecord(CUSTOMERS, { sub: 'a', email: 'alice@example.com', email_verified: true })?.id,
      'cus-1001',
    );
    assert.equal(
      findOwnRecord(CUSTOMERS, { sub: 'b', email: 'Bob@Example.com', email_verified: true })?.id,
      'cus-1002',
    );
  });

  test('an unverified or missing email matches nothing', () => {
    assert.equal(findOwnRecord(CUSTOMERS, { sub: 'a', email: 'alice@example.com' }), undefined);
    assert.equal(
      findOwnRecord(CUSTOMERS, { sub: 'a', email: 'alice@example.com', email_verified: 'true' }),
      undefined,
    );
    assert.equal(
      findOwnRecord(CUSTOMERS, { sub: 'a', email: 'alice@example.com', email_verified: false }),
      undefined,
    );
    assert.equal(findOwnRecord(CUSTOMERS, { sub: 'a' }), undefined);
  });

  test('an unknown email matches nothing', () => {
    assert.equal(
      findOwnRecord(CUSTOMERS, { sub: 'c', email: 'carol@example.com', email_verified: true }),
      undefined,
    );
  });

  test('matches on sub when a record names one, before any email', () => {
    const records: CustomerRecord[] = [
      ...CUSTOMERS,
      {
        id: 'cus-2001',
        name: 'Workload',
        email: 'ops@example.com',
        sub: 'example-workload',
        tier: 'standard',
        country: 'NL',
        since: '2024-01-01',
      },
    ];
    assert.equal(findOwnRecord(records, { sub: 'example-workload' })?.id, 'cus-2001');
    assert.equal(
      findOwnRecord(records, { sub: 'example-workload', email: 'alice@example.com', email_verified: true })
        ?.id,
      'cus-2001',
    );
  });
});
