/**
 * Mix-up and cross-site request forgery (RFC 9700 §4.4 and §4.7, RFC 9207, RFC 6749 §10.12): a
 * `state` or `iss` an attacker shapes, consent and sign-in forms submitted by another site or
 * without their token, another browser driving someone's interaction, and the pages in a frame.
 *
 * Already covered elsewhere and not repeated: `state` and `iss` on success, access_denied and
 * invalid_target answers; the email form without its CSRF token, from another origin, or from a
 * browser without the interaction cookie; the sign-in page's framing headers
 * (test/authorization-server/code-flow.test.ts, test/browser/login-consent.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestAuthorizationServer } from '../helpers/authorization-server.ts';
import { Browser } from '../helpers/oauth.ts';
import { declareLeakCheck, SecretLedger } from '../helpers/secret-leaks.ts';
import {
  assertErrorPage,
  assertRedirectedError,
  authorizationRequest,
  codeRequest,
  redeem,
  registerOk,
  STOCKS,
  signIn,
  startAttackServer,
  storeOf,
} from './support/authorization-server.ts';
import {
  follow,
  type Interaction,
  sendEmail,
  signInWithCode,
  startInteraction,
  submit,
  toConsentPage,
} from './support/interaction.ts';

const REDIRECT = 'http://127.0.0.1/callback';
const ledger = new SecretLedger();
let as: TestAuthorizationServer;

before(async () => {
  as = await startAttackServer(ledger, {
    dynamicRegistration: { rateLimit: { max: 1000, windowSeconds: 60 } },
  });
});
after(() => as.close());

/** A new client, so that the user has not consented to it yet. */
async function newClient(name = 'CSRF test agent') {
  return String((await registerOk(ledger, as.issuer, { client_name: name })).client_id);
}

/** The user allows on the consent page, properly: the interaction must still be answerable. */
async function allow(consent: Interaction) {
  const answered = await submit(
    as,
    consent,
    'consent',
    { csrf: consent.csrf, decision: 'allow' },
    {
      browser: consent.browser,
    },
  );
  const outcome = await follow(as, consent.browser, answered);
  assert.ok('callback' in outcome, 'the browser is sent back to the client');
  return outcome.callback;
}

describe('state and iss cannot be shaped by the attacker', () => {
  test('a state full of URL syntax comes back exactly, encoded: one code, one iss, the real issuer', async () => {
    const state = 'x&code=attacker-code&iss=https%3A%2F%2Fevil.example&state=other#frag';
    const result = await signIn(ledger, {
      issuer: as.issuer,
      clientId: await newClient(),
      redirectUri: REDIRECT,
      scope: 'stocks:read',
      extra: { state },
    });
    const params = result.callback.searchParams;
    assert.deepEqual(params.getAll('state'), [state]);
    assert.equal(params.getAll('code').length, 1);
    assert.notEqual(params.get('code'), 'attacker-code');
    assert.deepEqual(params.getAll('iss'), [as.issuer]);
    assert.equal(result.callback.hash, '', 'nothing lands in the fragment');
  });

  test('the same state on an error response: one error, one iss, the exact state, no code', async () => {
    const state = 'y&error=none&code=attacker-code&iss=https://evil.example';
    const { params } = codeRequest(await newClient(), REDIRECT, { state, resource: STOCKS });
    const response = await authorizationRequest(as.issuer, params);
    assert.equal(response.status, 303);
    assertRedirectedError(response.location, {
      error: 'invalid_target',
      state,
      issuer: as.issuer,
      redirectUri: REDIRECT,
    });
    assert.equal(response.location?.searchParams.getAll('error').length, 1);
    assert.deepEqual(response.location?.searchParams.getAll('iss'), [as.issuer]);
  });

  test('an iss parameter smuggled into the authorization request does not replace the issuer in the answer', async () => {
    const result = await signIn(ledger, {
      issuer: as.issuer,
      clientId: await newClient(),
      redirectUri: REDIRECT,
      scope: 'stocks:read',
      extra: { iss: 'https://evil.example' },
    });
    assert.deepEqual(result.callback.searchParams.getAll('iss'), [as.issuer]);
  });

  test('discovery promises iss in authorization responses (RFC 9207 §3)', async () => {
    const metadata = (await (await fetch(`${as.issuer}/.well-known/oauth-authorization-server`)).json()) as {
      issuer: string;
      authorization_response_iss_parameter_supported: boolean;
    };
    assert.equal(metadata.issuer, as.issuer);
    assert.equal(metadata.authorization_response_iss_parameter_supported, true);
  });
});

describe('consent CSRF: a consent only the user gave, on the page they were shown', () => {
  /** Each attack POSTs the consent form its own way; afterwards nothing may have changed. */
  const attacks: Array<[string, number, (consent: Interaction, other: Interaction) => Promise<unknown>]> = [
    [
      'without the CSRF token',
      403,
      (consent) => submit(as, consent, 'consent', { decision: 'allow' }, { browser: consent.browser }),
    ],
    [
      "with the CSRF token of the attacker's own interaction",
      403,
      (consent, other) =>
        submit(as, consent, 'consent', { csrf: other.csrf, decision: 'allow' }, { browser: consent.browser }),
    ],
    [
      'from another origin, with the right token',
      403,
      (consent) =>
        submit(
          as,
          consent,
          'consent',
          { csrf: consent.csrf, decision: 'allow' },
          {
            browser: consent.browser,
            headers: { origin: 'https://evil.example' },
          },
        ),
    ],
    [
      'from an opaque origin (Origin: null, a sandboxed frame)',
      403,
      (consent) =>
        submit(
          as,
          consent,
          'consent',
          { csrf: consent.csrf, decision: 'allow' },
          {
            browser: consent.browser,
            headers: { origin: 'null' },
          },
        ),
    ],
    [
      'as a cross-site text/plain form (no preflight)',
      415,
      async (consent) => {
        // What `<form enctype="text/plain">` sends: the fields as text, with the user's cookies.
        const response = await fetch(`${as.issuer}${consent.path}/consent`, {
          method: 'POST',
          headers: {
            'content-type': 'text/plain',
            cookie: [...consent.browser.cookies].map(([name, value]) => `${name}=${value}`).join('; '),
          },
          body: `csrf=${consent.csrf}&decision=allow`,
          redirect: 'manual',
        });
        return {
          status: response.status,
          location: response.headers.get('location') ?? undefined,
          text: await response.text(),
        };
      },
    ],
    [
      'as a GET with decision=allow in the query',
      405,
      (consent) =>
        consent.browser.request(`${as.issuer}${consent.path}/consent?decision=allow&csrf=${consent.csrf}`),
    ],
    [
      'without the interaction cookie (a cross-site POST under SameSite=Lax)',
      400,
      (consent) =>
        submit(as, consent, 'consent', { csrf: consent.csrf, decision: 'allow' }, { browser: new Browser() }),
    ],
  ];

  for (const [name, status, attack] of attacks) {
    test(`a consent ${name} is refused with ${status}; no consent is stored and the user can still answer`, async () => {
      const consent = await toConsentPage(as, ledger, await newClient());
      const other = await toConsentPage(as, ledger, await newClient('Attacker agent'), {
        email: 'bob@example.com',
      });
      const before = storeOf(as).consents();
      const response = (await attack(consent, other)) as {
        status: number;
        location: string | undefined;
        text: string;
      };
      assert.equal(response.status, status, response.text.slice(0, 300));
      assert.equal(response.location, undefined, 'no redirect, so no code');
      assert.doesNotMatch(response.text, /code=/);
      assert.deepEqual(storeOf(as).consents(), before, 'no consent was stored');
      const callback = await allow(consent);
      assert.ok(callback.searchParams.get('code'), 'the real answer still works');
      assert.equal(storeOf(as).consents().length, before.length + 1);
    });
  }
});

describe('login CSRF: a sign-in only the user performed', () => {
  test('a code form from another origin is refused with 403, and the code still signs the user in', async () => {
    const login = await startInteraction(as, await newClient());
    const sent = await sendEmail(as, ledger, login, 'alice@example.com');
    const forged = await submit(
      as,
      login,
      'code',
      { csrf: sent.csrf, code: sent.code! },
      {
        browser: login.browser,
        headers: { origin: 'https://evil.example' },
      },
    );
    assert.equal(forged.status, 403);
    assert.equal(forged.location, undefined);
    const real = await submit(
      as,
      login,
      'code',
      { csrf: sent.csrf, code: sent.code! },
      { browser: login.browser },
    );
    assert.equal(real.status, 303, 'the code was not used up by the forged request');
  });

  test("the attacker's own code submitted into the victim's interaction does not sign the victim in", async () => {
    // Classic login CSRF: make the victim's browser sign in as the attacker (bob).
    const attacker = await startInteraction(as, await newClient());
    const attackerCode = await sendEmail(as, ledger, attacker, 'bob@example.com');
    const victim = await startInteraction(as, await newClient());
    const victimSent = await sendEmail(as, ledger, victim, 'alice@example.com');
    const forged = await submit(
      as,
      victim,
      'code',
      { csrf: victimSent.csrf, code: attackerCode.code! },
      {
        browser: victim.browser,
      },
    );
    assert.equal(forged.status, 400, 'a code belongs to the sign-in it was sent for');
    assert.equal(forged.location, undefined);
    // Nor can the attacker's interaction be finished from the victim's browser.
    const crossed = await submit(
      as,
      attacker,
      'code',
      { csrf: attackerCode.csrf, code: attackerCode.code! },
      {
        browser: victim.browser,
      },
    );
    assert.equal(crossed.status, 400);
    assert.equal(crossed.location, undefined);
  });
});

describe("another session's interaction", () => {
  test("another browser opening someone's sign-in page gets 400 and cannot change it", async () => {
    const victim = await startInteraction(as, await newClient());
    const stranger = await new Browser().request(`${as.issuer}${victim.path}`);
    assert.equal(stranger.status, 400);
    assert.doesNotMatch(stranger.text, /name="csrf"/, 'no form, no token handed out');
    const sent = await sendEmail(as, ledger, victim, 'alice@example.com');
    assert.ok(sent.code, 'the victim carries on');
  });

  test("a browser with its own interaction cannot use someone else's: 400, nothing changes", async () => {
    const victim = await startInteraction(as, await newClient());
    const attacker = await startInteraction(as, await newClient());
    // The attacker's browser holds an interaction cookie, just not the victim's.
    const page = await attacker.browser.request(`${as.issuer}${victim.path}`);
    assert.equal(page.status, 400);
    const email = await submit(
      as,
      victim,
      'email',
      { csrf: victim.csrf, email: 'bob@example.com' },
      {
        browser: attacker.browser,
      },
    );
    assert.equal(email.status, 400);
    const signedIn = await signInWithCode(as, ledger, victim);
    assert.equal(signedIn.status, 303, 'the victim signs in as before');
  });

  test("another browser answering someone's consent page: 400, no consent stored, the user still decides", async () => {
    const consent = await toConsentPage(as, ledger, await newClient());
    const attacker = await startInteraction(as, await newClient());
    const before = storeOf(as).consents();
    const forged = await submit(
      as,
      consent,
      'consent',
      { csrf: consent.csrf, decision: 'allow' },
      {
        browser: attacker.browser,
      },
    );
    assert.equal(forged.status, 400);
    assert.deepEqual(storeOf(as).consents(), before);
    assert.ok((await allow(consent)).searchParams.get('code'));
  });

  test("another browser following someone's resume URL after sign-in gets an error page, no code", async () => {
    const victim = await startInteraction(as, await newClient());
    const signedIn = await signInWithCode(as, ledger, victim);
    const resume = signedIn.location!;
    assert.match(new URL(resume).pathname, /^\/authorize\//);
    const stolen = await new Browser().request(resume);
    assert.equal(stolen.status, 400, stolen.text.slice(0, 200));
    assert.equal(stolen.location, undefined);
    assert.match(stolen.text, /Error: invalid_request/);
    // The victim's browser still completes (consent, then the code).
    const next = await follow(as, victim.browser, signedIn);
    assert.ok('interaction' in next);
    const callback = await allow({ ...victim, ...next.interaction });
    const token = await redeem(ledger, as.issuer, {
      code: callback.searchParams.get('code')!,
      verifier: victim.verifier,
      redirectUri: REDIRECT,
      clientId: String(victim.params.client_id),
    });
    assert.equal(token.status, 200, token.text);
  });
});

describe('framing: no page can be put in a frame (clickjacking the Allow button)', () => {
  const assertUnframeable = (headers: Headers, page: string) => {
    assert.match(headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/, page);
    assert.equal(headers.get('x-frame-options'), 'DENY', page);
  };

  test('the code page and the consent page forbid framing', async () => {
    const login = await startInteraction(as, await newClient());
    const sent = await sendEmail(as, ledger, login, 'alice@example.com');
    assertUnframeable(sent.page.headers, 'code page');
    const consent = await toConsentPage(as, ledger, await newClient());
    assertUnframeable(consent.page.headers, 'consent page');
  });

  test('error pages forbid framing: a refused authorization request and a stale interaction', async () => {
    const { params } = codeRequest(await newClient(), 'https://evil.example/cb');
    const refused = await authorizationRequest(as.issuer, params);
    assertErrorPage(refused, 'invalid_redirect_uri');
    assertUnframeable(refused.headers, 'authorization error page');
    const stale = await new Browser().request(`${as.issuer}/interaction/aaaaaaaaaaaaaaaaaaaaaa`);
    assert.equal(stale.status, 400);
    assertUnframeable(stale.headers, 'interaction error page');
  });

  test('the development inbox forbids framing', async () => {
    const response = await fetch(`${as.issuer}/dev/inbox`);
    assert.equal(response.status, 200);
    assertUnframeable(response.headers, 'development inbox');
  });
});

declareLeakCheck(ledger, { minimumSecrets: 20, oneTimeCodes: true });
