import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ClientTrustPolicy, classifyClientIdUrl } from './client-trust-policy.ts';

const policy: ClientTrustPolicy = {
  trustedDomains: ['example.com', 'Trusted.Example.ORG'],
  deniedDomains: ['evil.example.com', 'blocked.test'],
  unlisted: 'allow',
};

describe('classifyClientIdUrl', () => {
  it('trusts the exact domain and its subdomains', () => {
    assert.equal(classifyClientIdUrl('https://example.com/client.json', policy), 'trusted');
    assert.equal(classifyClientIdUrl('https://app.example.com/client.json', policy), 'trusted');
    assert.equal(classifyClientIdUrl('https://a.b.example.com:8443/c', policy), 'trusted');
  });

  it('does not treat a mere string suffix as a subdomain', () => {
    assert.equal(classifyClientIdUrl('https://badexample.com/client', policy), 'unverified');
    assert.equal(classifyClientIdUrl('https://example.com.attacker.net/client', policy), 'unverified');
  });

  it('compares case-insensitively and ignores a trailing dot', () => {
    assert.equal(classifyClientIdUrl('https://APP.EXAMPLE.COM/client', policy), 'trusted');
    assert.equal(classifyClientIdUrl('https://trusted.example.org/client', policy), 'trusted');
    assert.equal(classifyClientIdUrl('https://evil.example.com./client', policy), 'denied');
  });

  it('lets denied win over trusted', () => {
    assert.equal(classifyClientIdUrl('https://evil.example.com/client', policy), 'denied');
    assert.equal(classifyClientIdUrl('https://x.evil.example.com/client', policy), 'denied');
    assert.equal(
      classifyClientIdUrl('https://example.com/c', { ...policy, deniedDomains: ['example.com'] }),
      'denied',
    );
  });

  it('classifies unlisted hosts by the unlisted setting', () => {
    assert.equal(classifyClientIdUrl('https://other.test/client', policy), 'unverified');
    assert.equal(classifyClientIdUrl('https://other.test/client', { ...policy, unlisted: 'deny' }), 'denied');
    assert.equal(
      classifyClientIdUrl('https://app.example.com/c', { ...policy, unlisted: 'deny' }),
      'trusted',
    );
  });

  it('accepts wildcard and leading-dot entries as the same as the bare domain', () => {
    const wildcard = { ...policy, trustedDomains: ['*.corp.test', '.other.test'] };
    assert.equal(classifyClientIdUrl('https://corp.test/c', wildcard), 'trusted');
    assert.equal(classifyClientIdUrl('https://x.corp.test/c', wildcard), 'trusted');
    assert.equal(classifyClientIdUrl('https://y.other.test/c', wildcard), 'trusted');
  });

  it('matches internationalised domains in either form', () => {
    const idn = { ...policy, trustedDomains: ['bücher.example'] };
    assert.equal(classifyClientIdUrl('https://shop.xn--bcher-kva.example/c', idn), 'trusted');
  });

  it('ignores empty entries and matches IP-literal hosts exactly', () => {
    const odd = { ...policy, trustedDomains: ['', '  ', '127.0.0.1', '[::1]'] };
    assert.equal(classifyClientIdUrl('https://anything.test/c', odd), 'unverified');
    assert.equal(classifyClientIdUrl('http://127.0.0.1:3000/c', odd), 'trusted');
    assert.equal(classifyClientIdUrl('http://[::1]:3000/c', odd), 'trusted');
  });

  it('denies a client_id that is not a URL with a host', () => {
    assert.equal(classifyClientIdUrl('not a url', policy), 'denied');
    assert.equal(classifyClientIdUrl('urn:example:client', policy), 'denied');
  });
});
