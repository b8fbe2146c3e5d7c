/**
 * The sign-in pages: ask for an email address, then for the six-digit code sent to it.
 *
 * No user enumeration: the code page says the same thing whether or not the address may sign in.
 */

import type { Branding } from './branding.ts';
import { csrfField, errorMessage, html, layout, type SafeHtml, safeUrl } from './html.ts';

export interface EmailPageOptions {
  /** Where the form posts (same origin). */
  action: string;
  csrfToken: string;
  /** The name of the application the user is signing in to (escaped; may be chosen by the client). */
  clientName: string;
  /** Whether the organization knows who publishes the application (the badge the consent page shows). */
  clientVerified?: boolean;
  error?: string;
  /** Pre-fills the field, e.g. after an error. */
  email?: string;
  /**
   * Who this browser is already signed in as, when the server asks to sign in again anyway
   * (prompt=login, max_age, another account asked for). Only for a session that exists: nothing is
   * shown without one. `signOutUrl` is the end_session_endpoint.
   */
  signedIn?: { email: string; signOutUrl: string } | undefined;
  devBanner?: boolean;
  branding?: Branding | undefined;
}

export function emailPage({
  action,
  csrfToken,
  clientName,
  clientVerified,
  error,
  email,
  signedIn,
  devBanner,
  branding,
}: EmailPageOptions): string {
  const describedBy = error ? 'form-error email-hint' : 'email-hint';
  // A shared browser: whoever signed in last may not be who is at the keyboard. The same words as on
  // the consent page; signing out ends this sign-in too, so the application starts a new one.
  const signedInNotice =
    signedIn &&
    html`<p class="notice" id="signed-in">You are signed in as <strong>${signedIn.email}</strong>. To continue as ${signedIn.email}, confirm it with a code sent to that address. <a href="${safeUrl(signedIn.signOutUrl)}">Not you? Sign out</a>, then start again from your application.</p>`;
  // In words as well as colour, as on the consent page: a name alone can be anyone's.
  const badge =
    clientVerified === undefined
      ? ''
      : clientVerified
        ? html` <span class="badge verified">Verified</span>`
        : html` <span class="badge unverified">Unverified</span>`;
  const body = html`<h1>Sign in</h1>
<p class="muted">to continue to <strong>${clientName}</strong>${badge}</p>
${signedInNotice}
${errorMessage(error)}
<form method="post" action="${safeUrl(action)}">
${csrfField(csrfToken)}
<div class="field">
<label for="email">Email address</label>
<input id="email" name="email" type="email" autocomplete="email" required autofocus spellcheck="false" autocapitalize="none" value="${email ?? signedIn?.email ?? ''}" aria-describedby="${describedBy}"${error ? html` aria-invalid="true"` : ''}>
</div>
<p class="hint" id="email-hint">If this address is approved to sign in, we will email it a six-digit code.</p>
<div class="actions"><button type="submit">Send code</button></div>
</form>`;
  return layout({ title: 'Sign in', body, devBanner, branding });
}

export interface CodePageOptions {
  /** Where the code form posts (same origin). */
  action: string;
  csrfToken: string;
  /** The address the code was sent to, as the user typed it. */
  email: string;
  /** Where the "Send a new code" form posts (same origin). */
  resendAction: string;
  error?: string;
  /** Shown when given: how many more codes may be tried. */
  attemptsLeft?: number;
  /** Optional link back to the email page, to use another address. */
  useAnotherEmailHref?: string;
  devBanner?: boolean;
  branding?: Branding | undefined;
}

/**
 * The address as typed, carried by the code page's forms rather than kept by the server between
 * pages: any instance can answer the next step. It is only the user's own input sent back (shown on
 * the page, and where "Send a new code" sends one, as typing it again would); the code is checked
 * against the login's record in the store, whatever this field says.
 */
function typedEmailField(email: string): SafeHtml {
  return html`<input type="hidden" name="email" value="${email}">`;
}

function attemptsText(attemptsLeft: number): string {
  if (attemptsLeft <= 0) return 'No attempts left.';
  return attemptsLeft === 1 ? '1 attempt left.' : `${attemptsLeft} attempts left.`;
}

export function codePage({
  action,
  csrfToken,
  email,
  resendAction,
  error,
  attemptsLeft,
  useAnotherEmailHref,
  devBanner,
  branding,
}: CodePageOptions): string {
  const describedBy = error ? 'form-error code-hint' : 'code-hint';
  const body = html`<h1>Check your email</h1>
<p>We sent a six-digit code to <strong>${email}</strong> if it is approved to sign in.</p>
${errorMessage(error)}
<form method="post" action="${safeUrl(action)}">
${csrfField(csrfToken)}
${typedEmailField(email)}
<div class="field">
<label for="code">Six-digit code</label>
<input id="code" name="code" type="text" inputmode="numeric" pattern="[0-9]{6}" minlength="6" maxlength="6" autocomplete="one-time-code" required autofocus spellcheck="false" title="The six digits from the email" aria-describedby="${describedBy}"${error ? html` aria-invalid="true"` : ''}>
</div>
<p class="hint" id="code-hint">The code expires after a few minutes.${attemptsLeft !== undefined && html` ${attemptsText(attemptsLeft)}`}</p>
<div class="actions"><button type="submit">Sign in</button></div>
</form>
<form method="post" action="${safeUrl(resendAction)}">
${csrfField(csrfToken)}
${typedEmailField(email)}
<p class="hint">Did not get it? Check your spam folder, or ask for another one.</p>
<button type="submit" class="secondary">Send a new code</button>
</form>
${useAnotherEmailHref && html`<p class="hint"><a href="${safeUrl(useAnotherEmailHref)}">Use a different email address</a></p>`}`;
  return layout({ title: 'Enter your code', body, devBanner, branding });
}
