/**
 * The consent page: which application asks, whether Gatehouse could verify who publishes it, where
 * the browser goes next, and which new permissions it asks for on which resource.
 *
 * Everything shown about the client (name, hosts) may be chosen by the client: all of it is escaped,
 * and an unverified client is flagged as such in words, not only in colour.
 */

import { type Branding, DEFAULT_BRANDING } from './branding.ts';
import { csrfField, html, layout, type SafeHtml, safeUrl } from './html.ts';

export type ClientKind = 'pre-registered' | 'cimd' | 'dynamic';

export interface ConsentScope {
  name: string;
  description: string;
  /** Already granted to this client by this user: listed apart, not as a new request. */
  alreadyGranted: boolean;
}

export interface ConsentPageOptions {
  /** Where the form posts (same origin). */
  action: string;
  csrfToken: string;
  client: {
    name: string;
    /** For a CIMD client: the host of its client_id URL. */
    clientIdHost?: string;
    verified: boolean;
    kind: ClientKind;
  };
  /** The host of the redirect_uri the browser is sent back to. */
  redirectHost: string;
  /** Who is signed in; `signOutUrl` (the end_session_endpoint) for "Not you?" on a shared browser. */
  user: { email: string; signOutUrl?: string; accountUrl?: string };
  resource: { name: string; uri: string };
  scopes: ConsentScope[];
  /**
   * Asked for, but closed to this user by the tool policy (tools/tool-policy.ts): listed as not
   * given, whatever the user chooses.
   */
  unavailable?: Array<{ name: string; description: string }>;
  devBanner?: boolean;
  branding?: Branding | undefined;
}

const KIND_TEXT: Record<ClientKind, string> = {
  'pre-registered': 'Registered by the administrators of this sign-in service.',
  cimd: 'Described by a metadata document that it publishes itself.',
  dynamic: 'Registered itself automatically.',
};

function verificationNotice(verified: boolean, organization: string): SafeHtml {
  return verified
    ? html`<p class="notice verified">${organization} has verified who publishes this application.</p>`
    : html`<p class="notice unverified">${organization} could not verify who publishes this application. Only continue if you trust it.</p>`;
}

function scopeList(scopes: ConsentScope[], className: string): SafeHtml {
  return html`<ul class="${className}">${scopes.map(
    (scope) => html`<li>${scope.description} <code>${scope.name}</code></li>`,
  )}</ul>`;
}

export function consentPage({
  action,
  csrfToken,
  client,
  redirectHost,
  user,
  resource,
  scopes,
  unavailable = [],
  devBanner,
  branding = DEFAULT_BRANDING,
}: ConsentPageOptions): string {
  const requested = scopes.filter((scope) => !scope.alreadyGranted);
  const granted = scopes.filter((scope) => scope.alreadyGranted);
  const badge = client.verified
    ? html`<span class="badge verified">Verified</span>`
    : html`<span class="badge unverified">Unverified</span>`;
  const clientIdHost = client.kind === 'cimd' && client.clientIdHost;

  const body = html`<h1>Allow ${client.name} to access ${resource.name}?</h1>
<p><strong>${client.name}</strong> ${badge}</p>
${verificationNotice(client.verified, branding.organizationName)}
<dl>
${clientIdHost && html`<dt>Published at</dt><dd><strong>${clientIdHost}</strong></dd>`}
<dt>Application</dt><dd>${KIND_TEXT[client.kind]}</dd>
<dt>Sends you back to</dt><dd><strong>${redirectHost}</strong></dd>
<dt>Resource</dt><dd>${resource.name}<br><code>${resource.uri}</code></dd>
<dt>Signed in as</dt><dd>${user.email}${
    user.signOutUrl &&
    html` <a href="${safeUrl(user.signOutUrl)}">Not you? Sign out</a>, then start again from your application.`
  }</dd>
</dl>
${
  requested.length > 0
    ? html`<h2>It asks permission to</h2>
${scopeList(requested, 'scopes requested')}`
    : html`<h2>It asks for no new permission</h2>`
}
${
  granted.length > 0 &&
  html`<h2>Already allowed</h2>
${scopeList(granted, 'scopes granted')}`
}
${
  unavailable.length > 0 &&
  html`<h2>Not available to your account</h2>
<p>It also asks for these, which your account may not be given; they are left out whatever you choose.</p>
<ul class="scopes unavailable">${unavailable.map(
    (scope) => html`<li>${scope.description} <code>${scope.name}</code></li>`,
  )}</ul>`
}
<form method="post" action="${safeUrl(action)}">
${csrfField(csrfToken)}
<div class="actions">
<button name="decision" value="allow">Allow</button>
<button name="decision" value="deny">Deny</button>
</div>
</form>
<p class="hint">Whichever you choose, you will be sent back to ${redirectHost}.${
    user.accountUrl &&
    html` You can revoke this at any time at <a href="${safeUrl(user.accountUrl)}">${user.accountUrl}</a>.`
  }</p>`;
  return layout({ title: 'Allow access?', body, devBanner, branding });
}
