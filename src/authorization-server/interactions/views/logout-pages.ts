/**
 * RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0, oidc-provider's `rpInitiatedLogout`):
 * the page that asks whether to sign out, and the page after it.
 *
 * The question is asked on a page of ours because a link alone must not sign anyone out (a
 * cross-site request could): oidc-provider hands over a form with its `xsrf` secret, and the buttons
 * here submit it. Signing out ends the browser session; the agents the user allowed keep their
 * tokens until those expire or are revoked (grants are not revoked by a sign-out).
 */
import type { Branding } from './branding.ts';
import { html, layout, raw } from './html.ts';

export interface LogoutPageOptions {
  /** oidc-provider's form (`<form id="op.logoutForm" …>` with the xsrf field), inserted as it is. */
  form: string;
  /** Who is signed in, when known. */
  email?: string | undefined;
  /** The application that asked for the sign-out, when it said (client_id or id_token_hint). */
  clientName?: string | undefined;
  devBanner?: boolean;
  branding?: Branding | undefined;
}

export function logoutPage({ form, email, clientName, devBanner, branding }: LogoutPageOptions): string {
  const who = email ? html`<p>You are signed in as <strong>${email}</strong>.</p>` : '';
  const asked = clientName
    ? html`<p class="muted"><strong>${clientName}</strong> asks to sign you out.</p>`
    : '';
  const body = html`<h1>Sign out?</h1>
${who}
${asked}
<p class="hint">Signing out ends your session in this browser. The agents you allowed keep working until their access expires or you revoke it.</p>
${raw(form)}
<div class="actions">
<button type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>Sign out</button>
<button type="submit" form="op.logoutForm" class="secondary">Stay signed in</button>
</div>`;
  return layout({ title: 'Sign out', body, devBanner, branding });
}

export function signedOutPage({
  devBanner,
  branding,
}: {
  devBanner?: boolean;
  branding?: Branding | undefined;
} = {}): string {
  const body = html`<h1>You are signed out</h1>
<p>Your session in this browser has ended. You can close this page.</p>`;
  return layout({ title: 'Signed out', body, devBanner, branding });
}
