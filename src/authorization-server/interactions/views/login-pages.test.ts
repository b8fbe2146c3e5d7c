import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { codePage, emailPage } from './login-pages.ts';

function inputNamed(page: string, name: string): string {
  const match = new RegExp(`<input[^>]*\\sname="${name}"[^>]*>`).exec(page);
  assert.ok(match, `input ${name} is present`);
  return match[0];
}

describe('emailPage', () => {
  const page = emailPage({ action: '/i/1/email', csrfToken: 'tok', clientName: 'Claude' });

  it('asks for the email with the right input attributes', () => {
    const input = inputNamed(page, 'email');
    for (const attribute of ['type="email"', 'autocomplete="email"', ' required', ' autofocus']) {
      assert.ok(input.includes(attribute), attribute);
    }
    assert.ok(input.includes('value=""'));
    assert.match(page, /<label for="email">/);
    assert.match(page, /<button type="submit">Send code<\/button>/);
    assert.match(page, /Claude/);
  });

  it("shows the application's trust badge in words, as the consent page does", () => {
    const verified = emailPage({ action: '/a', csrfToken: 't', clientName: 'Claude', clientVerified: true });
    assert.match(verified, /<strong>Claude<\/strong> <span class="badge verified">Verified<\/span>/);
    const unverified = emailPage({
      action: '/a',
      csrfToken: 't',
      clientName: 'Claude',
      clientVerified: false,
    });
    assert.match(unverified, /<span class="badge unverified">Unverified<\/span>/);
    assert.doesNotMatch(page, /class="badge/);
  });

  it('posts to the action with the csrf field', () => {
    assert.match(page, /<form method="post" action="\/i\/1\/email">/);
    assert.match(page, /<input type="hidden" name="csrf" value="tok">/);
  });

  it('shows no error unless given one, then shows it as an alert and keeps the email', () => {
    assert.doesNotMatch(page, /role="alert"/);
    const withError = emailPage({
      action: '/a',
      csrfToken: 't',
      clientName: 'c',
      error: 'Enter a valid email address',
      email: 'bob@example',
    });
    assert.match(withError, /<p class="error" role="alert" id="form-error">Enter a valid email address<\/p>/);
    assert.ok(inputNamed(withError, 'email').includes('value="bob@example"'));
    assert.ok(inputNamed(withError, 'email').includes('aria-invalid="true"'));
  });

  it('says nothing about a signed-in user unless there is one', () => {
    assert.doesNotMatch(page, /signed in as|Not you|session\/end/i);
  });

  it('on a shared browser: names who is signed in, offers to continue as them, links to sign out', () => {
    const shared = emailPage({
      action: '/a',
      csrfToken: 't',
      clientName: 'Claude',
      signedIn: { email: 'alice@example.com', signOutUrl: '/session/end' },
    });
    assert.match(
      shared,
      /<p class="notice" id="signed-in">You are signed in as <strong>alice@example\.com<\/strong>\./,
    );
    assert.match(shared, /To continue as alice@example\.com, confirm it with a code sent to that address\./);
    assert.match(
      shared,
      /<a href="\/session\/end">Not you\? Sign out<\/a>, then start again from your application\./,
    );
    // Continuing as them is one click: the field holds their address, unless the user typed another.
    assert.ok(inputNamed(shared, 'email').includes('value="alice@example.com"'));
    const typed = emailPage({
      action: '/a',
      csrfToken: 't',
      clientName: 'Claude',
      email: 'bob@example.com',
      error: 'Too many codes were requested.',
      signedIn: { email: 'alice@example.com', signOutUrl: '/session/end' },
    });
    assert.ok(inputNamed(typed, 'email').includes('value="bob@example.com"'));
    assert.match(typed, /You are signed in as <strong>alice@example\.com/);
  });

  it('escapes the signed-in address and refuses a sign-out URL with a script scheme', () => {
    const hostile = emailPage({
      action: '/a',
      csrfToken: 't',
      clientName: 'c',
      signedIn: { email: '"><script>alert(1)</script>@example.com', signOutUrl: 'javascript:alert(1)' },
    });
    assert.doesNotMatch(hostile, /<script>/);
    assert.match(hostile, /&lt;script&gt;/);
    assert.doesNotMatch(hostile, /href="javascript:/);
    assert.ok(inputNamed(hostile, 'email').includes('value="&quot;&gt;&lt;script&gt;'));
  });
});

describe('codePage', () => {
  const options = {
    action: '/i/1/code',
    csrfToken: 'tok',
    email: 'ann@example.com',
    resendAction: '/i/1/resend',
  };
  const page = codePage(options);

  it('says the same thing whether the address is approved or not', () => {
    assert.match(
      page,
      /We sent a six-digit code to <strong>ann@example\.com<\/strong> if it is approved to sign in\./,
    );
  });

  it('asks for the code with the right input attributes', () => {
    const input = inputNamed(page, 'code');
    for (const attribute of [
      'inputmode="numeric"',
      'pattern="[0-9]{6}"',
      'maxlength="6"',
      'autocomplete="one-time-code"',
      ' required',
    ]) {
      assert.ok(input.includes(attribute), attribute);
    }
    assert.match(page, /<button type="submit">Sign in<\/button>/);
  });

  it('has a resend form posting to resendAction with the csrf field', () => {
    const resend = /<form method="post" action="\/i\/1\/resend">([\s\S]*?)<\/form>/.exec(page);
    assert.ok(resend);
    assert.ok(resend[1]?.includes('<input type="hidden" name="csrf" value="tok">'));
    assert.ok(resend[1]?.includes('Send a new code'));
    assert.match(page, /<form method="post" action="\/i\/1\/code">/);
  });

  it('carries the typed address in both forms, escaped, so that any instance can answer the next step', () => {
    const forms = [...page.matchAll(/<form method="post" action="[^"]+">([\s\S]*?)<\/form>/g)];
    assert.equal(forms.length, 2);
    for (const form of forms)
      assert.ok(form[1]?.includes('<input type="hidden" name="email" value="ann@example.com">'));
    const hostile = codePage({ ...options, email: '"><script>alert(1)</script>' });
    assert.doesNotMatch(hostile, /<script>/);
    assert.ok(hostile.includes('name="email" value="&quot;&gt;&lt;script&gt;'));
  });

  it('shows the attempts left only when given', () => {
    assert.doesNotMatch(page, /attempt/);
    assert.match(codePage({ ...options, attemptsLeft: 3 }), /3 attempts left\./);
    assert.match(codePage({ ...options, attemptsLeft: 1 }), /1 attempt left\./);
    assert.match(codePage({ ...options, attemptsLeft: 0 }), /No attempts left\./);
  });

  it('shows an error and the link to use another email when given', () => {
    assert.doesNotMatch(page, /Use a different email address/);
    const withExtras = codePage({ ...options, error: 'That code is not right', useAnotherEmailHref: '/i/1' });
    assert.match(withExtras, /role="alert"[^>]*>That code is not right</);
    assert.match(withExtras, /<a href="\/i\/1">Use a different email address<\/a>/);
  });

  it('never renders a javascript: URL given as an action or link', () => {
    const page = codePage({
      ...options,
      action: 'javascript:alert(1)',
      resendAction: 'JAVASCRIPT:alert(1)',
      useAnotherEmailHref: 'javascript:alert(1)',
    });
    assert.doesNotMatch(page, /javascript:/i);
  });
});
