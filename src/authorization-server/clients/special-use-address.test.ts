import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopbackAddress, isPublicAddress } from './special-use-address.ts';

describe('isPublicAddress', () => {
  it('accepts plain global unicast IPv4 and IPv6 addresses', () => {
    for (const ip of [
      '8.8.8.8',
      '1.1.1.1',
      '93.184.216.34',
      '2606:4700:4700::1111',
      '2001:4860:4860::8888',
    ]) {
      assert.equal(isPublicAddress(ip), true, ip);
    }
  });

  it('refuses every RFC 6890 special-use IPv4 range', () => {
    const special = [
      '0.0.0.0', // "this network"
      '0.1.2.3',
      '10.0.0.1', // RFC 1918
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '100.64.0.1', // CGNAT, RFC 6598
      '127.0.0.1', // loopback
      '127.255.255.254',
      '169.254.169.254', // link-local, cloud metadata endpoints
      '192.0.0.8', // IETF protocol assignments
      '192.0.2.1', // documentation
      '198.51.100.7',
      '203.0.113.9',
      '198.18.0.1', // benchmarking
      '192.88.99.1', // 6to4 relay anycast
      '224.0.0.1', // multicast
      '240.0.0.1', // reserved
      '255.255.255.255', // broadcast
    ];
    for (const ip of special) assert.equal(isPublicAddress(ip), false, ip);
  });

  it('refuses special-use IPv6 ranges, including those outside 2000::/3', () => {
    const special = [
      '::', // unspecified
      '::1', // loopback
      'fe80::1', // link-local
      'fc00::1', // unique local
      'fd12:3456:789a::1',
      'ff02::1', // multicast
      '2001:db8::1', // documentation
      '2002:7f00:1::1', // 6to4 (embeds an IPv4 address)
      '2001:0:4136:e378::1', // Teredo
      '64:ff9b::a00:1', // NAT64 (RFC 6052)
      '100::1', // discard-only
      '::7f00:1', // deprecated IPv4-compatible ::127.0.0.1
      'fec0::1', // deprecated site-local
    ];
    for (const ip of special) assert.equal(isPublicAddress(ip), false, ip);
  });

  it('judges IPv4-mapped IPv6 addresses as the IPv4 address they carry', () => {
    assert.equal(isPublicAddress('::ffff:127.0.0.1'), false);
    assert.equal(isPublicAddress('::ffff:7f00:1'), false);
    assert.equal(isPublicAddress('::ffff:10.1.2.3'), false);
    assert.equal(isPublicAddress('::ffff:169.254.169.254'), false);
    assert.equal(isPublicAddress('::ffff:8.8.8.8'), true);
  });

  it('refuses anything that is not a canonical IP address', () => {
    for (const value of [
      '',
      'localhost',
      'example.com',
      '127.1',
      '0x7f.0.0.1',
      '2130706433',
      '8.8.8.8.',
      'fe80::1%eth0',
    ]) {
      assert.equal(isPublicAddress(value), false, value);
    }
  });
});

describe('isLoopbackAddress', () => {
  it('recognises IPv4, IPv6 and IPv4-mapped loopback addresses', () => {
    for (const ip of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) {
      assert.equal(isLoopbackAddress(ip), true, ip);
    }
  });

  it('rejects everything else', () => {
    for (const ip of ['8.8.8.8', '10.0.0.1', '::', '0.0.0.0', 'localhost', '127.1', '::2']) {
      assert.equal(isLoopbackAddress(ip), false, ip);
    }
  });
});
