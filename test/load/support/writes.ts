/**
 * Writes the authorization server acknowledges, and the check that each is still there after a
 * restart, through the API only:
 *
 * - a registration (201 from POST /register): RFC 7592 GET of its `registration_client_uri` with its
 *   registration access token answers 200 with the same client_id;
 * - a consent (303 from the consent form's POST): a new authorization request for that client from
 *   the same browser reaches the consent page and the page asks for no new permission (the grant
 *   held: every scope is listed as already allowed), without a sign-in when the browser got back
 *   to the client afterwards (the session held; see `AckedConsent.sessionAcked`);
 * - an issued token (200 from POST /token): introspection says it is active (which also needs its
 *   grant, RFC 7662 via oidc-provider's grant check).
 */
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import {
  accessTokenOf,
  authorizationRequest,
  codeOf,
  type Discovery,
  FORM,
  playUser,
  type Registration,
  register,
  StepError,
  tokenRequestBody,
} from './agent.ts';
import { type Answer, Browser, keepAliveAgent, request } from './http.ts';
import { isActive } from './internal.ts';
import { Tally } from './outcomes.ts';
import { pool } from './scenario.ts';
import type { Stack } from './stack.ts';

export interface AckedConsent {
  browser: Browser;
  clientId: string;
  email: string;
  /**
   * The browser was sent back to the client after the consent: it holds the session cookie of
   * that answer. oidc-provider gives the session a new id when it resumes the authorization
   * (the old one is deleted), so when the server dies during that resume the browser's cookie
   * names a session that is gone: the user signs in again, and the grant must still be there.
   */
  sessionAcked: boolean;
}

export class Ledger {
  readonly registrations: Registration[] = [];
  readonly consents: AckedConsent[] = [];
  readonly tokens: string[] = [];
  /** How writer flows ended: `token` (all acknowledged), or the step and status they stopped at. */
  readonly flows = new Tally();

  describe(): string {
    return `${this.registrations.length} registrations, ${this.consents.length} consents, ${this.tokens.length} tokens`;
  }
}

/** Records a consent acknowledgment (a 303 to the consent POST). */
export function ackConsent(ledger: Ledger, answer: Answer, consent: AckedConsent): AckedConsent | undefined {
  if (answer.status !== 303 && answer.status !== 302) return undefined;
  ledger.consents.push(consent);
  return consent;
}

/**
 * One client's whole story from one machine: registration, sign-in, consent, token. Records each
 * acknowledgment in `ledger` and stops at the first step that fails (the server went away).
 */
export async function writeFlow(
  discovery: Discovery,
  address: string,
  email: string,
  ledger: Ledger,
  agents: { agent: http.Agent; browser: Browser } = {
    agent: keepAliveAgent(address, 1),
    browser: new Browser(address),
  },
): Promise<void> {
  const { agent, browser } = agents;
  try {
    const registration = await register(discovery, agent, `writer ${email}`);
    ledger.registrations.push(registration);
    const authorization = authorizationRequest(discovery, registration.clientId);
    const shown = await playUser(discovery.issuer, browser, email, browser.request(authorization.url), {
      stopAtConsent: true,
    });
    if (!('consent' in shown)) throw new StepError('consent', 'skipped', 'no consent page');
    const consented = await request(shown.consent.url, {
      method: 'POST',
      headers: browser.headers({ ...FORM, origin: new URL(discovery.issuer).origin }),
      body: new URLSearchParams(shown.consent.form).toString(),
      agent: browser.agent,
    }).catch((error: unknown) => {
      throw new StepError('consent', (error as { code?: string }).code ?? 'error', String(error));
    });
    const acked = ackConsent(ledger, consented, {
      browser,
      clientId: registration.clientId,
      email,
      sessionAcked: false,
    });
    const back = await playUser(discovery.issuer, browser, email, consented);
    if (!('callback' in back)) throw new StepError('authorization', 'consent', 'asked twice');
    if (acked) acked.sessionAcked = true;
    const code = codeOf(back.callback, authorization, discovery.issuer);
    const token = await request(discovery.tokenEndpoint, {
      method: 'POST',
      headers: FORM,
      body: tokenRequestBody(discovery, registration.clientId, code, authorization.verifier),
      agent,
    }).catch((error: unknown) => {
      throw new StepError('token', (error as { code?: string }).code ?? 'error', String(error));
    });
    ledger.tokens.push(accessTokenOf(token));
    ledger.flows.add('flows', 'token');
  } catch (error) {
    ledger.flows.add('flows', error instanceof StepError ? `${error.step} ${error.status}` : 'error');
  } finally {
    agent.destroy();
  }
}

export interface Verification {
  registrations: { acked: number; present: number };
  consents: { acked: number; present: number };
  tokens: { acked: number; present: number };
  /** What is missing, one line each (the first few). */
  missing: string[];
  lost: number;
}

/** Checks every acknowledged write of `ledger` through the API (see the top of this file). */
export async function verifyLedger(
  stack: Stack,
  discovery: Discovery,
  ledger: Ledger,
): Promise<Verification> {
  const missing: string[] = [];
  const lose = (line: string) => {
    if (missing.length < 5) missing.push(line);
    return false;
  };

  const registrations = await pool(ledger.registrations, 8, async (registration) => {
    const answer = await request(registration.registrationClientUri, {
      headers: { authorization: `Bearer ${registration.registrationAccessToken}` },
    });
    const clientId =
      answer.status === 200 ? (JSON.parse(answer.body) as { client_id?: string }).client_id : '';
    return (
      clientId === registration.clientId ||
      lose(`registration ${registration.clientId}: GET answered ${answer.status}`)
    );
  });

  const consents = await pool(ledger.consents, 8, async (consent) => {
    try {
      const authorization = authorizationRequest(discovery, consent.clientId);
      const shown = await playUser(
        discovery.issuer,
        consent.browser,
        consent.email,
        consent.browser.request(authorization.url),
        // An acknowledged session must hold; one whose rotation was cut off may ask to sign in.
        { stopAtConsent: true, signIn: !consent.sessionAcked },
      );
      // A browser whose session was not acknowledged may have to sign in again; that sign-in is this
      // request's interaction, so a remembered grant is used with no consent page (provider.ts,
      // native_client_prompt) and the code comes straight back. A lost grant would show the page.
      if ('callback' in shown && !consent.sessionAcked)
        return (
          shown.callback.searchParams.has('code') ||
          lose(`consent ${consent.clientId}: signed in again, and no code came back`)
        );
      if (!('consent' in shown)) return lose(`consent ${consent.clientId}: no consent page`);
      return (
        shown.consent.html.includes('It asks for no new permission') ||
        lose(`consent ${consent.clientId}: the consent page asks for the scopes again (grant lost)`)
      );
    } catch (error) {
      return lose(`consent ${consent.clientId}: ${(error as Error).message}`);
    }
  });

  const tokens = await pool(
    ledger.tokens,
    8,
    async (token) =>
      (await isActive(stack, token)) || lose(`token …${token.slice(-6)}: introspection says inactive`),
  );

  const count = (results: boolean[]) => results.filter(Boolean).length;
  const result = {
    registrations: { acked: registrations.length, present: count(registrations) },
    consents: { acked: consents.length, present: count(consents) },
    tokens: { acked: tokens.length, present: count(tokens) },
    missing,
  };
  return {
    ...result,
    lost:
      result.registrations.acked -
      result.registrations.present +
      result.consents.acked -
      result.consents.present +
      result.tokens.acked -
      result.tokens.present,
  };
}

/**
 * Writes that are not there, to show the check finds them: a registration deleted since (RFC 7592
 * DELETE), a consent never given (a client this browser's user has not consented to), a token never
 * issued. `verifyLedger` must count exactly these three as lost.
 */
export async function controlLedger(discovery: Discovery, address: string, ledger: Ledger): Promise<Ledger> {
  const control = new Ledger();
  const agent = keepAliveAgent(address, 1);
  try {
    const deleted = await register(discovery, agent, 'control: deleted');
    const removal = await request(deleted.registrationClientUri, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${deleted.registrationAccessToken}` },
      agent,
    });
    if (removal.status !== 204) throw new Error(`RFC 7592 DELETE answered ${removal.status}`);
    control.registrations.push(deleted);
    const unconsented = await register(discovery, agent, 'control: never consented');
    const someone = ledger.consents.at(-1);
    if (!someone) throw new Error('no acknowledged consent to borrow a signed-in browser from');
    control.consents.push({ ...someone, clientId: unconsented.clientId });
    control.tokens.push(randomBytes(32).toString('base64url'));
    return control;
  } finally {
    agent.destroy();
  }
}

export function describeVerification(v: Verification): string {
  return (
    `registrations ${v.registrations.present}/${v.registrations.acked}, consents ${v.consents.present}/${v.consents.acked}, ` +
    `tokens ${v.tokens.present}/${v.tokens.acked} still there` +
    (v.missing.length > 0 ? `; missing: ${v.missing.join('; ')}` : '')
  );
}
