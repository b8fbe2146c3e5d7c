import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { AgentError } from './errors.ts';
import { agentHome, defaultStorePath, openTokenStore } from './token-store.ts';

const ISSUER = 'https://auth.example.com';
const RESOURCE = 'https://mcp.example.com/mcp';
const mode = (file: string) => statSync(file).mode & 0o777;
const scratch = () => mkdtempSync(path.join(tmpdir(), 'agent-store-'));

describe('the token store', () => {
  test('lives in $GATEHOUSE_AGENT_HOME, else $XDG_CONFIG_HOME/gatehouse, else ~/.config/gatehouse', () => {
    assert.equal(agentHome({ GATEHOUSE_AGENT_HOME: '/a', XDG_CONFIG_HOME: '/x' }), '/a');
    assert.equal(agentHome({ XDG_CONFIG_HOME: '/x' }), path.join('/x', 'gatehouse'));
    assert.match(agentHome({}), /\.config[/\\]gatehouse$/);
    assert.equal(defaultStorePath({ GATEHOUSE_AGENT_HOME: '/a' }), path.join('/a', 'agent-credentials.json'));
  });

  test('creates nothing until something is saved, then a 0600 file in a 0700 directory', {
    skip: process.platform === 'win32',
  }, () => {
    const dir = path.join(scratch(), 'home', 'gatehouse');
    const file = path.join(dir, 'agent-credentials.json');
    const store = openTokenStore(file);
    assert.equal(store.tokens(ISSUER, 'c', RESOURCE), undefined);
    store.saveTokens(ISSUER, 'c', RESOURCE, { access_token: 'at', token_type: 'Bearer', scope: 's' });
    assert.equal(mode(file), 0o600);
    assert.equal(mode(dir), 0o700);
    store.saveTokens(ISSUER, 'c', RESOURCE, { access_token: 'at2', token_type: 'Bearer' });
    assert.equal(mode(file), 0o600, 'still 0600 after a rewrite');
  });

  test('narrows a file others can read back to 0600, and says so', {
    skip: process.platform === 'win32',
  }, () => {
    const file = path.join(scratch(), 'store.json');
    writeFileSync(file, JSON.stringify({ version: 1, authorizationServers: {} }));
    chmodSync(file, 0o644);
    const warnings: string[] = [];
    openTokenStore(file, (message) => warnings.push(message)).registration(ISSUER);
    assert.equal(mode(file), 0o600);
    assert.match(warnings.join('\n'), /readable by others/);
  });

  test('keeps registrations and tokens per issuer, client and resource', () => {
    const store = openTokenStore(path.join(scratch(), 'store.json'));
    store.saveRegistration(ISSUER, { client_id: 'dyn', registered_at: 1 });
    store.saveTokens(ISSUER, 'dyn', RESOURCE, { access_token: 'a1', token_type: 'Bearer' });
    store.saveTokens('https://other.example.com', 'dyn', RESOURCE, {
      access_token: 'a2',
      token_type: 'Bearer',
    });
    store.saveTokens(ISSUER, 'dyn', 'https://elsewhere.example.com/mcp', {
      access_token: 'a3',
      token_type: 'Bearer',
    });
    assert.equal(store.registration(ISSUER)?.client_id, 'dyn');
    assert.equal(store.registration('https://other.example.com'), undefined);
    assert.equal(store.tokens(ISSUER, 'dyn', RESOURCE)?.access_token, 'a1');
    assert.equal(store.tokens('https://other.example.com', 'dyn', RESOURCE)?.access_token, 'a2');
    assert.equal(store.tokens(ISSUER, 'other', RESOURCE), undefined);

    store.forgetTokens(ISSUER, 'dyn', RESOURCE);
    assert.equal(store.tokens(ISSUER, 'dyn', RESOURCE), undefined);
    assert.equal(store.tokens(ISSUER, 'dyn', 'https://elsewhere.example.com/mcp')?.access_token, 'a3');
  });

  test('forgetting a registration forgets the tokens issued to it, at that issuer only', () => {
    const file = path.join(scratch(), 'store.json');
    const store = openTokenStore(file);
    store.saveRegistration(ISSUER, { client_id: 'dyn', registered_at: 1 });
    store.saveTokens(ISSUER, 'dyn', RESOURCE, { access_token: 'a1', token_type: 'Bearer' });
    store.saveTokens(ISSUER, 'cimd', RESOURCE, { access_token: 'a2', token_type: 'Bearer' });
    store.saveTokens('https://other.example.com', 'dyn', RESOURCE, {
      access_token: 'a3',
      token_type: 'Bearer',
    });
    store.forgetRegistration(ISSUER, 'dyn');
    assert.equal(store.registration(ISSUER), undefined);
    assert.equal(store.tokens(ISSUER, 'dyn', RESOURCE), undefined);
    assert.equal(store.tokens(ISSUER, 'cimd', RESOURCE)?.access_token, 'a2');
    assert.equal(store.tokens('https://other.example.com', 'dyn', RESOURCE)?.access_token, 'a3');
    assert.doesNotMatch(readFileSync(file, 'utf8'), /"a1"/);
  });

  test('keeps a DPoP key per client and issuer, and forgets it with the registration', () => {
    const file = path.join(scratch(), 'store.json');
    const store = openTokenStore(file);
    const key = (d: string) => ({ alg: 'ES256', private_jwk: { kty: 'EC', crv: 'P-256', d }, created_at: 1 });
    store.saveRegistration(ISSUER, { client_id: 'dyn', registered_at: 1 });
    store.saveDpopKey(ISSUER, 'dyn', key('d-dyn'));
    store.saveDpopKey(ISSUER, 'cimd', key('d-cimd'));
    store.saveDpopKey('https://other.example.com', 'dyn', key('d-other'));
    assert.equal(store.dpopKey(ISSUER, 'dyn')?.private_jwk.d, 'd-dyn');
    assert.equal(store.dpopKey(ISSUER, 'nobody'), undefined);
    assert.equal(mode(file), 0o600, 'the private key is in the owner-only file');

    store.forgetRegistration(ISSUER, 'dyn');
    assert.equal(store.dpopKey(ISSUER, 'dyn'), undefined);
    assert.equal(store.dpopKey(ISSUER, 'cimd')?.private_jwk.d, 'd-cimd');
    assert.equal(store.dpopKey('https://other.example.com', 'dyn')?.private_jwk.d, 'd-other');
    assert.doesNotMatch(readFileSync(file, 'utf8'), /d-dyn/);
  });

  test('a damaged file is reported with what to do, not overwritten', () => {
    const file = path.join(scratch(), 'store.json');
    writeFileSync(file, '{ not json', { mode: 0o600 });
    const store = openTokenStore(file);
    assert.throws(
      () => store.saveTokens(ISSUER, 'c', RESOURCE, { access_token: 'a', token_type: 'Bearer' }),
      (error: unknown) =>
        error instanceof AgentError &&
        /not valid JSON/.test(error.message) &&
        /Delete it/.test(error.hint ?? ''),
    );
    assert.equal(readFileSync(file, 'utf8'), '{ not json');
  });
});
