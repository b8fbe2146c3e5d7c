import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { createApprovedUsers, normalizeEmail, subjectFor } from './approved-users.ts';

const KEY = 'an-installation-subject-key-0123456789abcdef';

const approved = createApprovedUsers({
  users: [
    { email: 'Alice@Example.com', name: 'Alice', claims: { role: 'admin', groups: ['ops', 'dev'] } },
    { email: 'carol@corp.example' },
  ],
  domains: [{ domain: 'corp.example', claims: { department: 'corp' } }, { domain: '@Partner.Example' }],
  subjectKey: KEY,
});

describe('approved users', () => {
  it('finds an explicit user whatever the case and surrounding spaces', () => {
    const user = approved.find('  ALICE@example.COM \n');
    assert.ok(user);
    assert.equal(user.email, 'alice@example.com');
    assert.equal(user.name, 'Alice');
    assert.deepEqual(user.claims, { role: 'admin', groups: ['ops', 'dev'] });
    assert.equal(approved.find('alice@example.com')?.sub, user.sub);
  });

  it('derives a stable, opaque subject from the normalized address', () => {
    const user = approved.find('alice@example.com');
    assert.ok(user);
    assert.match(user.sub, /^user_[A-Za-z0-9_-]{22}$/);
    assert.equal(user.sub, subjectFor('alice@example.com', KEY));
    assert.ok(!user.sub.includes('alice'));
    // Same address, another lookup of a freshly built list: same subject.
    const again = createApprovedUsers({
      users: [{ email: 'alice@example.com' }],
      domains: [],
      subjectKey: KEY,
    });
    assert.equal(again.find('Alice@Example.com')?.sub, user.sub);
    assert.notEqual(approved.find('bob@corp.example')?.sub, user.sub);
  });

  it('keys the subject with the installation secret: nobody can confirm a guessed address offline', () => {
    const sub = subjectFor('alice@example.com', KEY);
    // What an unkeyed hash gave, and what anyone could compute from a guess:
    const unkeyed = `user_${createHash('sha256').update('alice@example.com').digest('base64url').slice(0, 22)}`;
    assert.notEqual(sub, unkeyed);
    // Another installation gives the same person another subject.
    assert.notEqual(subjectFor('alice@example.com', `${KEY}-other`), sub);
  });

  it('approves any address at exactly an approved domain', () => {
    const bob = approved.find('Bob@CORP.example');
    assert.ok(bob);
    assert.equal(bob.email, 'bob@corp.example');
    assert.equal(bob.name, undefined);
    assert.deepEqual(bob.claims, { department: 'corp' });
    assert.ok(approved.find('x@partner.example'), 'a leading @ in the configured domain is accepted');
    assert.equal(approved.find('bob@sub.corp.example'), undefined, 'subdomains are not approved');
    assert.equal(approved.find('bob@corp.example.evil'), undefined);
    assert.equal(approved.find('bob@evilcorp.example'), undefined);
  });

  it('prefers the explicit entry over the domain entry', () => {
    const carol = approved.find('carol@corp.example');
    assert.ok(carol);
    assert.deepEqual(carol.claims, {}, 'domain claims are not merged into an explicit entry');
  });

  it('returns undefined for unknown addresses', () => {
    assert.equal(approved.find('mallory@example.org'), undefined);
    assert.equal(approved.find('alice@example.co'), undefined);
  });

  it('returns undefined for malformed input', () => {
    for (const input of [
      '',
      '   ',
      'alice',
      'alice@',
      '@example.com',
      'alice@@example.com',
      'al ice@example.com',
      'alice@exa mple.com',
      'alice@example.com.',
      'alice@.example.com',
      'alice@-corp.example',
      '.alice@corp.example',
      'al..ice@corp.example',
      '"alice"@corp.example',
      'alice@corp.example\r\nBcc: x@corp.example',
      'alicé@corp.example',
      `${'a'.repeat(65)}@corp.example`,
    ]) {
      assert.equal(approved.find(input), undefined, JSON.stringify(input));
    }
    assert.equal(normalizeEmail('a@b@corp.example'), undefined);
  });

  it('hands out copies, so callers cannot change the configuration', () => {
    const first = approved.find('alice@example.com');
    assert.ok(first);
    (first.claims.groups as string[]).push('root');
    first.claims.role = 'nobody';
    assert.deepEqual(approved.find('alice@example.com')?.claims, { role: 'admin', groups: ['ops', 'dev'] });
  });

  it('rejects bad configuration at creation', () => {
    assert.throws(
      () => createApprovedUsers({ users: [{ email: 'not-an-address' }], domains: [], subjectKey: KEY }),
      /valid email/,
    );
    assert.throws(
      () =>
        createApprovedUsers({
          users: [{ email: 'a@x.example' }, { email: 'A@X.example' }],
          domains: [],
          subjectKey: KEY,
        }),
      /twice/,
    );
    assert.throws(
      () => createApprovedUsers({ users: [], domains: [{ domain: 'bad domain' }], subjectKey: KEY }),
      /valid domain/,
    );
    assert.throws(
      () =>
        createApprovedUsers({
          users: [{ email: 'a@x.example', claims: { sub: 'someone-else' } }],
          domains: [],
          subjectKey: KEY,
        }),
      /"sub"/,
    );
    assert.throws(
      () =>
        createApprovedUsers({
          users: [],
          domains: [{ domain: 'x.example', claims: { email_verified: true } }],
          subjectKey: KEY,
        }),
      /email_verified/,
    );
  });
});
