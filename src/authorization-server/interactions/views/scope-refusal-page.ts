/**
 * The end of a request for permissions the user may never have (a step-up for a tool that their
 * organization's tool policy closes to them): a page that says so and why, instead of a consent
 * page whose "Allow" could only lead back to the same request. Its one button goes back to the
 * application with `access_denied` (RFC 6749 §4.1.2.1), so the application stops asking.
 */

import { type Branding, DEFAULT_BRANDING } from './branding.ts';
import { csrfField, html, layout, safeUrl } from './html.ts';

export interface ScopeRefusalPageOptions {
  /** Where the form posts (the interaction's consent route). */
  action: string;
  csrfToken: string;
  clientName: string;
  redirectHost: string;
  email: string;
  scopes: Array<{ name: string; description: string }>;
  devBanner?: boolean;
  branding?: Branding | undefined;
}

export function scopeRefusalPage({
  action,
  csrfToken,
  clientName,
  redirectHost,
  email,
  scopes,
  devBanner,
  branding = DEFAULT_BRANDING,
}: ScopeRefusalPageOptions): string {
  const body = html`<h1>Not available to your account</h1>
<p><strong>${clientName}</strong> asks for a permission that your account (${email}) may not be given:</p>
<ul class="scopes refused">${scopes.map(
    (scope) => html`<li>${scope.description} <code>${scope.name}</code></li>`,
  )}</ul>
<p>Signing in again will not change this. If you need it, ask ${branding.supportContact ?? `the administrators of ${branding.organizationName}`} to give your account access.</p>
<form method="post" action="${safeUrl(action)}">
${csrfField(csrfToken)}
<div class="actions">
<button name="decision" value="refused">Back to ${clientName}</button>
</div>
</form>
<p class="hint">You will be sent back to ${redirectHost}, which is told that the permission was refused.</p>`;
  return layout({ title: 'Not available to your account', body, devBanner, branding });
}
