/**
 * The user's own page (`/account`): the agents they allowed, with what each may do in words, and a
 * Revoke button per agent; and signing out of this browser.
 */
import type { Branding } from '../interactions/views/branding.ts';
import { csrfField, html, layout, type SafeHtml } from '../interactions/views/html.ts';

export interface AccountAgent {
  grantId: string;
  name: string;
  verified: boolean;
  redirectHosts: string[];
  scopes: Array<{ name: string; description: string }>;
  allowedAt?: string;
  lastUsedAt?: string;
}

const when = (iso: string | undefined) =>
  iso ? new Date(iso).toUTCString().replace(' GMT', ' UTC') : 'never';

function agentItem(agent: AccountAgent, csrf: string): SafeHtml {
  const badge = agent.verified
    ? html`<span class="badge verified">Verified</span>`
    : html`<span class="badge unverified">Unverified</span>`;
  return html`<li class="agent">
<h2>${agent.name} ${badge}</h2>
<dl>
<dt>Sends you back to</dt><dd>${agent.redirectHosts.join(', ') || 'unknown'}</dd>
<dt>Allowed</dt><dd>${when(agent.allowedAt)}</dd>
<dt>Last used</dt><dd>${when(agent.lastUsedAt)}</dd>
</dl>
<p>It may:</p>
<ul class="scopes">${agent.scopes.map((scope) => html`<li>${scope.description} <code>${scope.name}</code></li>`)}</ul>
<form method="post" action="/account/revoke">${csrfField(csrf)}<input type="hidden" name="grant_id" value="${agent.grantId}">
<button type="submit" class="danger">Revoke ${agent.name}</button></form>
</li>`;
}

export function accountPage(options: {
  email: string;
  agents: AccountAgent[];
  csrfToken: string;
  notice?: string | undefined;
  administrator: boolean;
  branding: Branding;
  devBanner: boolean;
}): string {
  const { agents } = options;
  const list =
    agents.length === 0
      ? html`<p class="muted">You have not allowed any agent yet. When an AI agent asks to use ${options.branding.organizationName}'s services for you, it appears here.</p>`
      : html`<ul class="agents">${agents.map((agent) => agentItem(agent, options.csrfToken))}</ul>`;
  return layout({
    title: 'Your agents',
    branding: options.branding,
    devBanner: options.devBanner,
    body: html`<h1>Your agents</h1>
<p>Signed in as <strong>${options.email}</strong>. <a href="/session/end">Sign out</a>${options.administrator && html` &middot; <a href="/admin">Admin console</a>`}</p>
${options.notice && html`<p class="ok" role="status">${options.notice}</p>`}
<p class="hint">These are the AI agents and applications you allowed to act for you. Revoking one stops it at once: it must ask you again before it can do anything more.</p>
${list}`,
  });
}
