/** The per-address key; the caps and eviction themselves are tested with real sockets in http-server.test.ts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressKey } from './connection-limits.ts';

test('IPv4 clients count by address, IPv4-mapped IPv6 as IPv4', () => {
  assert.equal(addressKey('203.0.113.7'), '203.0.113.7');
  assert.equal(addressKey('::ffff:203.0.113.7'), '203.0.113.7');
});

test('IPv6 clients count by their /64: one host holds a whole /64', () => {
  assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:db8:1:2:ffff::1'), '2001:db8:1:2::/64');
  assert.notEqual(addressKey('2001:db8:1:3::1'), addressKey('2001:db8:1:2::1'));
  assert.equal(addressKey('::1'), '0:0:0:0::/64');
});

test('a missing or unparsable address falls into one shared bucket', () => {
  assert.equal(addressKey(undefined), 'unknown');
  assert.equal(addressKey('not an address'), 'unknown');
});
