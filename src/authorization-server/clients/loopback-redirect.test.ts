import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isImpersonableRedirectUri, isLoopbackRedirectUri, redirectUriMatches } from './loopback-redirect.ts';

test('exact match for non-loopback redirect URIs', () => {
  const registered = ['https://app.example.com/callback'];
  assert.equal(redirectUriMatches('https://app.example.com/callback', registered), true);
  assert.equal(redirectUriMatches('https://app.example.com/callback/', registered), false);
  assert.equal(redirectUriMatches('https://app.example.com:8443/callback', registered), false);
  assert.equal(redirectUriMatches('https://app.example.com/callback?x=1', registered), false);
});

test('loopback redirect URIs match on any port, registered with or without one (RFC 8252 §7.3)', () => {
  for (const host of ['localhost', '127.0.0.1', '[::1]']) {
    assert.equal(redirectUriMatches(`http://${host}:53124/callback`, [`http://${host}/callback`]), true);
    assert.equal(redirectUriMatches(`http://${host}:53124/callback`, [`http://${host}:3334/callback`]), true);
    assert.equal(redirectUriMatches(`http://${host}/callback`, [`http://${host}:3334/callback`]), true);
  }
});

test('loopback matching still compares scheme, host, path and query', () => {
  const registered = ['http://127.0.0.1/callback'];
  assert.equal(redirectUriMatches('http://127.0.0.1:5000/other', registered), false);
  assert.equal(redirectUriMatches('http://localhost:5000/callback', registered), false);
  assert.equal(redirectUriMatches('https://127.0.0.1:5000/callback', registered), false);
  assert.equal(redirectUriMatches('http://127.0.0.1:5000/callback?next=evil', registered), false);
  assert.equal(redirectUriMatches('http://evil.example:5000/callback', registered), false);
  assert.equal(redirectUriMatches('http://user@127.0.0.1:5000/callback', registered), false);
});

test('isLoopbackRedirectUri', () => {
  assert.equal(isLoopbackRedirectUri('http://localhost:1/x'), true);
  assert.equal(isLoopbackRedirectUri('http://127.0.0.2/x'), false);
  assert.equal(isLoopbackRedirectUri('https://localhost/x'), false);
  assert.equal(isLoopbackRedirectUri('not a url'), false);
});

test('isImpersonableRedirectUri: loopback and private-use schemes, not https or remote http', () => {
  assert.equal(isImpersonableRedirectUri('http://127.0.0.1:5000/callback'), true);
  assert.equal(isImpersonableRedirectUri('http://localhost/callback'), true);
  assert.equal(isImpersonableRedirectUri('com.example.app:/oauth'), true);
  assert.equal(isImpersonableRedirectUri('https://app.example.com/callback'), false);
  assert.equal(isImpersonableRedirectUri('https://localhost/callback'), false);
  assert.equal(isImpersonableRedirectUri('not a url'), false);
});
