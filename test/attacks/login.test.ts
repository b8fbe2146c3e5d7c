/**
 * Attacks on sign-in by email one-time code: guessing (bounded by tries per code and by the
 * throttle on new codes), learning which addresses are approved, reusing a code, using a code
 * meant for someone else, and fixing a session before the victim signs in.
 *
 * Already covered elsewhere and not repeated: five wrong codes lock a login; an unapproved email sees
 * the same email page and gets no mail; sending codes is throttled per email
 * (test/authorization-server/code-flow.test.ts, src/authorization-server/login/one-time-codes.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestAuthorizationServer } from '../helpers/authorization-server.ts';
import { Browser, inbox } from '../helpers/oauth.ts';
import { declareLeakCheck, SecretLedger } from '../helpers/secret-leaks.ts';
import {
  authorizationRequest,
  codeRequest,
  introspect,
  redeem,
  registerOk,
  startAttackServer,
} from './support/authorization-server.ts';
import {
  follow,
  type Interaction,
  type Page,
  sendEmail,
  startInteraction,
  submit,
} from './support/interaction.ts';

const REDIRECT = 'http://127.0.0.1/callback';
const ledger = new SecretLedger();
const servers: TestAuthorizationServer[] = [];

async function server(overrides: Record<string, unknown> = {}) {
  const as = await startAttackServer(ledger, overrides);
  servers.push(as);
  const clientId = String(
    (await registerOk(ledger, as.issuer, { client_name: 'Login test agent' })).client_id,
  );
  return { as, clientId };
}
after(async () => {
  for (const as of servers) await as.close();
});

/** A code that is not `code` (six digits). */
const wrongCode = (code: string | undefined) => (code === '000000' ? '111111' : '000000');

/** Removes what differs between two people's pages of the same kind: addresses, uids, tokens. */
const normalize = (html: string) =>
  html
    .replace(/[a-z]+@example\.com/g, 'EMAIL')
    .replace(/\/interaction\/[A-Za-z0-9_-]+/g, '/interaction/UID')
    .replace(/name="csrf" value="[^"]+"/g, 'name="csrf"');

/** Who a finished sign-in signed in: follows consent to the code, redeems it, asks introspection. */
async function signedInAs(as: TestAuthorizationServer, login: Interaction, answer: Page): Promise<string> {
  assert.equal(answer.status, 303, answer.text.slice(0, 300));
  let outcome = await follow(as, login.browser, answer);
  if ('interaction' in outcome) {
    const consent = outcome.interaction;
    const allowed = await submit(
      as,
      consent,
      'consent',
      { csrf: consent.csrf, decision: 'allow' },
      {
        browser: login.browser,
      },
    );
    outcome = await follow(as, login.browser, allowed);
  }
  assert.ok('callback' in outcome);
  const token = await redeem(ledger, as.issuer, {
    code: outcome.callback.searchParams.get('code')!,
    verifier: login.verifier,
    redirectUri: REDIRECT,
    clientId: String(login.params.client_id),
  });
  assert.equal(token.status, 200, token.text);
  return String((await introspect(ledger, as, String(token.json.access_token))).json.email);
}

describe('brute force against one account', () => {
  let as: TestAuthorizationServer;
  let clientId: string;
  before(async () => {
    ({ as, clientId } = await server({
      login: { perEmail: { max: 2, windowSeconds: 60 }, perAddress: { max: 1000, windowSeconds: 60 } },
    }));
  });

  test('guessing across new codes is bounded: two codes with five tries each, then no new code (429)', async () => {
    const login = await startInteraction(as, clientId);
    const first = await sendEmail(as, ledger, login, 'alice@example.com');
    let csrf = first.csrf;
    let accepted = 0;
    const guess = async () => {
      const answer = await submit(as, login, 'code', { csrf, code: '999999' }, { browser: login.browser });
      assert.equal(answer.status, 400, 'a guess never signs in');
      if (/not right/.test(answer.text)) accepted += 1;
      return answer;
    };
    for (let i = 0; i < 4; i += 1) await guess();
    assert.match((await guess()).text, /Too many wrong codes/);
    const second = await submit(
      as,
      login,
      'resend',
      { csrf, email: 'alice@example.com' },
      { browser: login.browser },
    );
    assert.equal(second.status, 200, 'one more code may be sent');
    for (let i = 0; i < 4; i += 1) await guess();
    assert.match((await guess()).text, /Too many wrong codes/);
    const third = await submit(
      as,
      login,
      'resend',
      { csrf, email: 'alice@example.com' },
      { browser: login.browser },
    );
    assert.equal(third.status, 429, 'no third code in the window');
    assert.match(third.text, /Too many codes were requested/);
    assert.equal(accepted, 8, 'four "not right" answers per code, the fifth locks it');
    const mailed = (await inbox(as.issuer)).filter((m) => m.to === 'alice@example.com');
    assert.equal(mailed.length, 2, 'the throttled request mailed nothing');
    // Even the newest real code is dead now.
    const newest = /\b(\d{6})\b/.exec(mailed[0]!.text)![1]!;
    ledger.rememberOneTimeCode(newest);
    csrf = first.csrf;
    const right = await submit(as, login, 'code', { csrf, code: newest }, { browser: login.browser });
    assert.equal(right.status, 400);
    assert.equal(right.location, undefined);
  });

  test('spelling the address differently does not reset the per-email throttle', async () => {
    // alice used both codes of the window above.
    const login = await startInteraction(as, clientId);
    for (const spelling of ['ALICE@example.com', ' alice@EXAMPLE.com ']) {
      const answer = await submit(
        as,
        login,
        'email',
        { csrf: login.csrf, email: spelling },
        { browser: login.browser },
      );
      assert.equal(answer.status, 429, spelling);
    }
    assert.equal((await inbox(as.issuer)).filter((m) => m.to === 'alice@example.com').length, 2);
  });
});

describe('malformed codes', () => {
  let as: TestAuthorizationServer;
  let clientId: string;
  before(async () => {
    ({ as, clientId } = await server());
  });

  for (const [name, code] of [
    ['five digits', '12345'],
    ['seven digits', '1234567'],
    ['letters', 'abcdef'],
    ['nothing', ''],
  ] as const) {
    test(`a malformed code (${name}) costs a try like any wrong code`, async () => {
      const login = await startInteraction(as, clientId);
      const sent = await sendEmail(as, ledger, login, 'bob@example.com');
      const answer = await submit(as, login, 'code', { csrf: sent.csrf, code }, { browser: login.browser });
      assert.equal(answer.status, 400);
      assert.match(answer.text, /4 attempts left/);
    });
  }
});

describe('brute force across many sign-ins from one address', () => {
  test('the per-address throttle stops new codes whatever the addresses typed', async () => {
    const { as, clientId } = await server({
      login: { perEmail: { max: 1000, windowSeconds: 60 }, perAddress: { max: 3, windowSeconds: 60 } },
    });
    const emails = ['alice@example.com', 'mallory@example.com', 'bob@example.com', 'eve@example.com'];
    const statuses: number[] = [];
    for (const email of emails) {
      const login = await startInteraction(as, clientId);
      const answer = await submit(
        as,
        login,
        'email',
        { csrf: login.csrf, email },
        { browser: login.browser },
      );
      statuses.push(answer.status);
    }
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    assert.equal((await inbox(as.issuer)).filter((m) => m.to === 'eve@example.com').length, 0);
    assert.ok(as.audit('login.code').some((r) => r.outcome === 'denied' && r.reason === 'throttled'));
  });
});

describe('enumeration of approved addresses', () => {
  let as: TestAuthorizationServer;
  let clientId: string;
  before(async () => {
    ({ as, clientId } = await server({
      login: { perEmail: { max: 1, windowSeconds: 60 }, perAddress: { max: 1000, windowSeconds: 60 } },
    }));
  });

  test('wrong codes answer the same for an unapproved address, and lock after as many tries', async () => {
    const real = await startInteraction(as, clientId);
    const realSent = await sendEmail(as, ledger, real, 'alice@example.com');
    const decoy = await startInteraction(as, clientId);
    const decoySent = await sendEmail(as, ledger, decoy, 'mallory@example.com');
    assert.equal(decoySent.code, undefined, 'nothing is mailed to an unapproved address');
    assert.equal(normalize(decoySent.page.text), normalize(realSent.page.text), 'the same code page');
    for (let i = 0; i < 5; i += 1) {
      const a = await submit(
        as,
        real,
        'code',
        { csrf: realSent.csrf, code: wrongCode(realSent.code) },
        {
          browser: real.browser,
        },
      );
      const b = await submit(
        as,
        decoy,
        'code',
        { csrf: decoySent.csrf, code: '123456' },
        { browser: decoy.browser },
      );
      assert.equal(b.status, a.status, `try ${i + 1}`);
      assert.equal(normalize(b.text), normalize(a.text), `try ${i + 1}: the same page`);
    }
  });

  test('the per-email throttle answers the same for an unapproved address', async () => {
    // Both addresses used their one code of the window above.
    const real = await startInteraction(as, clientId);
    const decoy = await startInteraction(as, clientId);
    const a = await submit(
      as,
      real,
      'email',
      { csrf: real.csrf, email: 'alice@example.com' },
      { browser: real.browser },
    );
    const b = await submit(
      as,
      decoy,
      'email',
      { csrf: decoy.csrf, email: 'mallory@example.com' },
      {
        browser: decoy.browser,
      },
    );
    assert.equal(a.status, 429);
    assert.equal(b.status, a.status);
    assert.equal(normalize(b.text), normalize(a.text));
  });
});

describe('reuse and codes meant for someone else', () => {
  let as: TestAuthorizationServer;
  let clientId: string;
  before(async () => {
    ({ as, clientId } = await server());
  });

  test('a code that signed in once does not sign in again, in its interaction or in a new one', async () => {
    const login = await startInteraction(as, clientId);
    const sent = await sendEmail(as, ledger, login, 'alice@example.com');
    const first = await submit(
      as,
      login,
      'code',
      { csrf: sent.csrf, code: sent.code! },
      { browser: login.browser },
    );
    assert.equal(first.status, 303);
    const again = await submit(
      as,
      login,
      'code',
      { csrf: sent.csrf, code: sent.code! },
      { browser: login.browser },
    );
    assert.equal(again.status, 400, 'the finished interaction takes no more codes');
    assert.equal(again.location, undefined);

    const other = await startInteraction(as, clientId);
    const otherSent = await sendEmail(as, ledger, other, 'alice@example.com');
    const replay = await submit(
      as,
      other,
      'code',
      { csrf: otherSent.csrf, code: sent.code! },
      {
        browser: other.browser,
      },
    );
    assert.equal(replay.status, 400, 'a code belongs to its own sign-in');
    assert.match(replay.text, /not right/);
  });

  test('two racing submissions of the right code sign in once', async () => {
    const login = await startInteraction(as, clientId);
    const sent = await sendEmail(as, ledger, login, 'bob@example.com');
    const answers = await Promise.all(
      [1, 2].map(() =>
        submit(as, login, 'code', { csrf: sent.csrf, code: sent.code! }, { browser: login.browser }),
      ),
    );
    assert.deepEqual(answers.map((a) => a.status).sort(), [303, 400]);
  });

  test("bob's code in alice's sign-in is a wrong code; alice's own code then signs in alice", async () => {
    const alice = await startInteraction(as, clientId);
    const aliceSent = await sendEmail(as, ledger, alice, 'alice@example.com');
    const bob = await startInteraction(as, clientId);
    const bobSent = await sendEmail(as, ledger, bob, 'bob@example.com');
    const crossed = await submit(
      as,
      alice,
      'code',
      { csrf: aliceSent.csrf, code: bobSent.code! },
      {
        browser: alice.browser,
      },
    );
    assert.equal(crossed.status, 400);
    assert.match(crossed.text, /4 attempts left/);
    const own = await submit(
      as,
      alice,
      'code',
      { csrf: aliceSent.csrf, code: aliceSent.code! },
      {
        browser: alice.browser,
      },
    );
    assert.equal(await signedInAs(as, alice, own), 'alice@example.com');
  });

  test("the attacker's code, then the victim's address in the same sign-in: the attacker's code no longer works", async () => {
    // bob (the attacker) asks for a code for himself, switches to alice's address, and enters his code.
    const login = await startInteraction(as, clientId);
    const own = await sendEmail(as, ledger, login, 'bob@example.com');
    const switched = await submit(
      as,
      login,
      'email',
      { csrf: login.csrf, email: 'alice@example.com' },
      {
        browser: login.browser,
      },
    );
    assert.equal(switched.status, 200);
    const attempt = await submit(
      as,
      login,
      'code',
      { csrf: own.csrf, code: own.code! },
      { browser: login.browser },
    );
    assert.equal(attempt.status, 400, 'not signed in, neither as alice nor as bob');
    assert.equal(attempt.location, undefined);
  });
});

describe('session fixation', () => {
  test("cookies planted before the victim signs in do not carry the victim's session", async () => {
    const { as, clientId } = await server();
    // The attacker opens a sign-in and plants its cookies in the victim's browser.
    const attacker = new Browser();
    const started = await startInteraction(as, clientId, { browser: attacker });
    const planted = new Map(attacker.cookies);
    const victim = new Browser();
    for (const [name, value] of planted) victim.cookies.set(name, value);
    const victimLogin: Interaction = { ...started, browser: victim };
    const sent = await sendEmail(as, ledger, victimLogin, 'alice@example.com');
    const answer = await submit(
      as,
      victimLogin,
      'code',
      { csrf: sent.csrf, code: sent.code! },
      { browser: victim },
    );
    assert.equal(await signedInAs(as, victimLogin, answer), 'alice@example.com');
    const session = victim.cookies.get('_gh_session');
    assert.ok(session, 'the victim has a session');
    assert.notEqual(session, planted.get('_gh_session'), 'a new session identifier after sign-in');

    // The attacker's browser, with the cookies it planted, is not signed in as the victim.
    const { params } = codeRequest(clientId, REDIRECT);
    const attempt = await authorizationRequest(as.issuer, params, attacker);
    assert.equal(attempt.status, 303);
    assert.match(
      attempt.location?.pathname ?? '',
      /^\/interaction\//,
      'sent to a page, not back with a code',
    );
    const page = await attacker.request(attempt.location!.href);
    assert.equal(page.status, 200);
    assert.match(page.text, /name="email"/, 'asked to sign in');
  });
});

declareLeakCheck(ledger, { minimumSecrets: 10, oneTimeCodes: true });
