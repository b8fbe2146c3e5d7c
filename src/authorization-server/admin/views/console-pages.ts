/**
 * The admin console's pages: server-rendered, no script, every change a form with the session's
 * anti-CSRF token (console-routes.ts), on the same layout as the sign-in pages.
 */
import type { Branding } from '../../interactions/views/branding.ts';
import { csrfField, html, layout, type SafeHtml } from '../../interactions/views/html.ts';
import type { AdminClientView, AdminGrantView, AdminUserView } from '../admin-service.ts';
import type { ClientApproval } from '../directory.ts';

export type ConsoleTab = 'users' | 'clients' | 'approvals' | 'tools' | 'keys' | 'audit';

export interface ConsoleFrame {
  email: string;
  csrf: string;
  notice?: string | undefined;
  pendingApprovals: number;
  branding: Branding;
  devBanner: boolean;
  /** Tabs contributed by other parts (keys, audit), when they exist. */
  extraTabs?: ConsoleTab[];
}

const TAB_NAMES: Record<ConsoleTab, string> = {
  users: 'Users',
  clients: 'Clients',
  approvals: 'Approvals',
  tools: 'Tools',
  keys: 'Keys',
  audit: 'Audit trail',
};

const when = (iso: string | undefined) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '—');

/** A one-button form posting to an action of the console. */
export function action(
  frame: ConsoleFrame,
  path: string,
  fields: Record<string, string>,
  label: string,
  danger = false,
): SafeHtml {
  return html`<form class="inline" method="post" action="/admin/${path}">${csrfField(frame.csrf)}${Object.entries(
    fields,
  ).map(
    ([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`,
  )}<button type="submit"${danger ? html` class="danger"` : html``}>${label}</button></form>`;
}

export function consolePage(frame: ConsoleFrame, tab: ConsoleTab, title: string, body: SafeHtml): string {
  const tabs: ConsoleTab[] = ['users', 'clients', 'approvals', ...(frame.extraTabs ?? [])];
  const nav = html`<nav class="tabs" aria-label="Console">${tabs.map(
    (name) =>
      html`<a href="/admin/${name}"${name === tab ? html` aria-current="page"` : html``}>${TAB_NAMES[name]}${
        name === 'approvals' && frame.pendingApprovals > 0 && html` (${frame.pendingApprovals})`
      }</a>`,
  )}<span class="muted">${frame.email} &middot; <a href="/account">Your agents</a> &middot; <a href="/session/end">Sign out</a></span></nav>`;
  const notice =
    frame.notice &&
    (frame.notice.startsWith('Not done:')
      ? html`<p class="error" role="alert">${frame.notice}</p>`
      : html`<p class="ok" role="status">${frame.notice}</p>`);
  return layout({
    title: `${title} - Admin`,
    wide: true,
    branding: frame.branding,
    devBanner: frame.devBanner,
    body: html`<h1>${title}</h1>${nav}${notice}${body}`,
  });
}

const claimsText = (claims: Record<string, unknown>) =>
  Object.entries(claims)
    .map(([key, value]) => `${key}=${Array.isArray(value) ? value.join(',') : String(value)}`)
    .join(' ');

export function usersPage(
  frame: ConsoleFrame,
  users: AdminUserView[],
  search: string | undefined,
  domains: Array<{ domain: string; source: string }>,
): string {
  const rows = users.map(
    (user) => html`<tr>
<td><a href="/admin/users/${encodeURIComponent(user.email)}">${user.email}</a>${user.administrator && html` <span class="badge verified">admin</span>`}</td>
<td>${user.name ?? ''}</td><td><code>${claimsText(user.claims)}</code></td>
<td>${user.status === 'active' ? 'active' : html`<strong>suspended</strong>`}</td><td>${user.source}</td><td>${when(user.last_sign_in_at)}</td>
<td>${
      user.status === 'active'
        ? action(frame, 'users/status', { email: user.email, status: 'suspended' }, 'Suspend', true)
        : action(frame, 'users/status', { email: user.email, status: 'active' }, 'Reinstate')
    } ${action(frame, 'users/remove', { email: user.email }, 'Remove', true)}</td>
</tr>`,
  );
  return consolePage(
    frame,
    'users',
    'Users',
    html`<form method="get" action="/admin/users" class="row"><div class="field"><label for="search">Search users</label>
<input type="text" id="search" name="search" value="${search ?? ''}"></div><button type="submit" class="secondary">Search</button></form>
<div class="table-wrap"><table><thead><tr><th>Email</th><th>Name</th><th>Claims</th><th>Status</th><th>Source</th><th>Last sign-in</th><th>Actions</th></tr></thead>
<tbody>${rows}</tbody></table></div>
${users.length === 0 && html`<p class="muted">No user matches.</p>`}
<h2>Add a user</h2>
<form method="post" action="/admin/users/add">${csrfField(frame.csrf)}
<div class="row"><div class="field"><label for="new-email">Email</label><input type="email" id="new-email" name="email" required></div>
<div class="field"><label for="new-name">Name</label><input type="text" id="new-name" name="name"></div>
<div class="field"><label for="new-claims">Claims (name=value, space-separated)</label><input type="text" id="new-claims" name="claims" placeholder="region=eu"></div></div>
<p><label><input type="checkbox" name="invite" value="true"> Send an invitation email</label></p>
<button type="submit">Add user</button></form>
<h2>Approved domains</h2>
<p class="hint">Anyone with an address at these domains may sign in.</p>
<ul>${domains.map((entry) => html`<li><code>${entry.domain}</code> (${entry.source}) ${action(frame, 'domains/remove', { domain: entry.domain }, 'Remove', true)}</li>`)}</ul>
${domains.length === 0 && html`<p class="muted">None.</p>`}
<form method="post" action="/admin/domains/add" class="row">${csrfField(frame.csrf)}<div class="field"><label for="new-domain">Domain</label><input type="text" id="new-domain" name="domain" required></div><button type="submit">Approve domain</button></form>`,
  );
}

function grantRows(
  frame: ConsoleFrame,
  grants: AdminGrantView[],
  back: string,
  by: 'user' | 'client',
): SafeHtml {
  if (grants.length === 0) return html`<p class="muted">No grants.</p>`;
  return html`<div class="table-wrap"><table><thead><tr><th>${by === 'user' ? 'Agent' : 'User'}</th><th>Scopes</th><th>Allowed</th><th>Last used</th><th></th></tr></thead><tbody>${grants.map(
    (
      grant,
    ) => html`<tr><td>${by === 'user' ? (grant.client_name ?? grant.client_id) : (grant.email ?? grant.sub)}</td>
<td><code>${grant.scopes.join(' ')}</code></td><td>${when(grant.consented_at)}</td><td>${when(grant.last_used_at)}</td>
<td>${action(frame, 'grants/revoke', { grant_id: grant.grant_id, back }, 'Revoke', true)}</td></tr>`,
  )}</tbody></table></div>`;
}

export function userPage(frame: ConsoleFrame, user: AdminUserView, grants: AdminGrantView[]): string {
  const back = `/admin/users/${encodeURIComponent(user.email)}`;
  return consolePage(
    frame,
    'users',
    user.email,
    html`<dl><dt>Subject</dt><dd><code>${user.sub}</code></dd><dt>Status</dt><dd>${user.status}</dd><dt>Source</dt><dd>${user.source}</dd>
<dt>Added</dt><dd>${when(user.created_at)}</dd><dt>Last sign-in</dt><dd>${when(user.last_sign_in_at)}</dd></dl>
<form method="post" action="/admin/users/update">${csrfField(frame.csrf)}<input type="hidden" name="email" value="${user.email}">
<div class="row"><div class="field"><label for="name">Name</label><input type="text" id="name" name="name" value="${user.name ?? ''}"></div>
<div class="field"><label for="claims">Claims (name=value, space-separated; lists with commas)</label><input type="text" id="claims" name="claims" value="${claimsText(user.claims)}"></div></div>
<button type="submit">Save</button></form>
<p class="hint">New claims are in the tokens issued from now on. To apply them at once, revoke the user's agents below.</p>
<div class="actions">${action(frame, 'users/sign-out', { email: user.email }, 'Sign out everywhere')}
${user.status === 'active' ? action(frame, 'users/status', { email: user.email, status: 'suspended' }, 'Suspend', true) : action(frame, 'users/status', { email: user.email, status: 'active' }, 'Reinstate')}
${action(frame, 'users/remove', { email: user.email }, 'Remove user', true)}</div>
<h2>Connected agents</h2>${grantRows(frame, grants, back, 'user')}`,
  );
}

const TRUST_TEXT: Record<AdminClientView['trust_class'], SafeHtml> = {
  'pre-registered': html`<span class="badge verified">pre-registered</span>`,
  'cimd-trusted': html`<span class="badge verified">CIMD trusted domain</span>`,
  cimd: html`<span class="badge unverified">CIMD other</span>`,
  dynamic: html`<span class="badge unverified">DCR</span>`,
};

export function clientsPage(
  frame: ConsoleFrame,
  clients: AdminClientView[],
  trusted: Array<{ domain: string; source: string }>,
): string {
  const rows = clients.map(
    (
      client,
    ) => html`<tr><td><a href="/admin/clients/${encodeURIComponent(client.client_id)}">${client.name ?? client.client_id}</a><br><code>${client.client_id}</code></td><td>${TRUST_TEXT[client.trust_class]}${client.role && html`<br>${client.role}`}</td>
<td>${client.registration}</td><td>${client.redirect_hosts.join(', ')}</td><td><code>${client.scopes.join(' ')}</code></td>
<td>${when(client.created_at)}</td><td>${when(client.last_used_at)}</td><td>${client.disabled ? html`<strong>disabled</strong>` : 'enabled'}${client.approval && html`<br>${client.approval}`}</td>
<td>${
      client.essential
        ? html`<span class="muted">needed by Gatehouse</span>`
        : client.disabled
          ? action(frame, 'clients/enable', { client_id: client.client_id }, 'Enable')
          : action(frame, 'clients/disable', { client_id: client.client_id }, 'Disable', true)
    } ${client.registration !== 'configuration' && action(frame, 'clients/delete', { client_id: client.client_id }, 'Delete', true)}</td></tr>`,
  );
  return consolePage(
    frame,
    'clients',
    'Clients',
    html`<div class="table-wrap"><table><thead><tr><th>Client</th><th>Trust</th><th>Registration</th><th>Redirect hosts</th><th>Scopes</th><th>Created</th><th>Last used</th><th>State</th><th>Actions</th></tr></thead><tbody>${rows}</tbody></table></div>
<h2>Pre-register a client</h2>
<form method="post" action="/admin/clients/register">${csrfField(frame.csrf)}
<div class="row"><div class="field"><label for="client-name">Name</label><input type="text" id="client-name" name="name" required></div>
<div class="field"><label for="client-id">Client id (optional)</label><input type="text" id="client-id" name="client_id"></div>
<div class="field"><label for="client-role">Role</label><select id="client-role" name="role"><option value="agent">agent (signs users in)</option><option value="workload">workload (client credentials)</option></select></div>
<div class="field"><label for="client-auth">Authentication</label><select id="client-auth" name="auth_method"><option value="">default (agent: none; workload: secret)</option><option value="none">none (public, PKCE)</option><option value="client_secret_basic">secret (shown once)</option><option value="private_key_jwt">key (paste its public JWKS)</option></select></div></div>
<div class="row"><div class="field"><label for="client-redirects">Redirect URIs (space-separated, agents)</label><input type="text" id="client-redirects" name="redirect_uris"></div>
<div class="field"><label for="client-scopes">Scopes (space-separated, empty: all)</label><input type="text" id="client-scopes" name="scopes"></div></div>
<div class="field"><label for="client-jwks">Public JWKS (for a key)</label><textarea id="client-jwks" name="jwks" rows="3"></textarea></div>
<button type="submit">Register client</button></form>
<h2>CIMD trusted domains</h2><p class="hint">Client metadata documents published under these domains are shown as Verified.</p>
<ul>${trusted.map((entry) => html`<li><code>${entry.domain}</code> (${entry.source}) ${action(frame, 'trusted-domains/remove', { domain: entry.domain }, 'Remove', true)}</li>`)}</ul>
${trusted.length === 0 && html`<p class="muted">None.</p>`}
<form method="post" action="/admin/trusted-domains/add" class="row">${csrfField(frame.csrf)}<div class="field"><label for="trusted">Domain</label><input type="text" id="trusted" name="domain" required></div><button type="submit">Trust domain</button></form>`,
  );
}

/** One client: what it is, and the users who allowed it, each revocable. */
export function clientPage(frame: ConsoleFrame, client: AdminClientView, grants: AdminGrantView[]): string {
  const back = `/admin/clients/${encodeURIComponent(client.client_id)}`;
  return consolePage(
    frame,
    'clients',
    client.name ?? client.client_id,
    html`<dl><dt>Client id</dt><dd><code>${client.client_id}</code></dd><dt>Trust</dt><dd>${TRUST_TEXT[client.trust_class]}</dd>
<dt>Registration</dt><dd>${client.registration}</dd><dt>Redirect hosts</dt><dd>${client.redirect_hosts.join(', ') || '(none)'}</dd>
<dt>Scopes</dt><dd><code>${client.scopes.join(' ') || '(all)'}</code></dd><dt>Created</dt><dd>${when(client.created_at)}</dd>
<dt>Last used</dt><dd>${when(client.last_used_at)}</dd><dt>State</dt><dd>${client.disabled ? 'disabled' : 'enabled'}</dd></dl>
<h2>Users who allowed it</h2>${grantRows(frame, grants, back, 'client')}`,
  );
}

/** Right after a registration: the one time the secret is shown. */
export function registeredClientPage(
  frame: ConsoleFrame,
  client: AdminClientView,
  secret: string | undefined,
): string {
  return consolePage(
    frame,
    'clients',
    `${client.name ?? client.client_id} is registered`,
    html`<dl><dt>Client id</dt><dd><code>${client.client_id}</code></dd><dt>Role</dt><dd>${client.role ?? ''}</dd>
<dt>Redirect hosts</dt><dd>${client.redirect_hosts.join(', ') || '(none)'}</dd><dt>Scopes</dt><dd><code>${client.scopes.join(' ') || '(all)'}</code></dd></dl>
${
  secret
    ? html`<p class="notice unverified">Copy the client secret now: it is not shown again.</p><pre>${secret}</pre>`
    : html`<p class="hint">No secret: the client authenticates with ${client.role === 'workload' ? 'its key' : 'PKCE (public) or its key'}.</p>`
}
<p><a href="/admin/clients">Back to the clients</a></p>`,
  );
}

export function approvalsPage(frame: ConsoleFrame, approvals: ClientApproval[]): string {
  const pending = approvals.filter((approval) => approval.status === 'pending');
  const decided = approvals.filter((approval) => approval.status !== 'pending');
  const item = (approval: ClientApproval) => html`<li><h2>${approval.name}</h2><dl>
<dt>Client id</dt><dd><code>${approval.clientId}</code></dd><dt>Class</dt><dd>${approval.clientClass}</dd>
<dt>Redirect URIs</dt><dd>${approval.redirectUris.map((uri) => html`<code>${uri}</code><br>`)}</dd>
<dt>Scopes asked</dt><dd><code>${approval.scopes.join(' ') || '(none)'}</code></dd>
<dt>Tried by</dt><dd>${approval.requestedBy}, ${when(new Date(approval.requestedAt).toISOString())}</dd>
${approval.decidedBy && html`<dt>Decided</dt><dd>${approval.status} by ${approval.decidedBy}</dd>`}
</dl><details><summary>Metadata it presented</summary><pre>${JSON.stringify(approval.metadata, null, 2)}</pre></details>
<div class="actions">${approval.status !== 'approved' && action(frame, 'approvals/decide', { client_id: approval.clientId, decision: 'approved' }, `Approve ${approval.name}`)}
${approval.status !== 'denied' && action(frame, 'approvals/decide', { client_id: approval.clientId, decision: 'denied' }, 'Deny', true)}</div></li>`;
  return consolePage(
    frame,
    'approvals',
    'Approvals',
    html`<p class="hint">Clients the approval policy (clientApproval) holds back until an administrator decides.</p>
<h2>Waiting</h2>${pending.length === 0 ? html`<p class="muted">Nothing is waiting.</p>` : html`<ul class="agents">${pending.map(item)}</ul>`}
<h2>Decided</h2>${decided.length === 0 ? html`<p class="muted">Nothing yet.</p>` : html`<ul class="agents">${decided.map(item)}</ul>`}`,
  );
}

/** What a destructive action will do, and the button that does it (the console's confirmation). */
export function confirmPage(
  frame: ConsoleFrame,
  tab: ConsoleTab,
  question: { title: string; consequence: string; button: string; path: string; back: string },
  fields: Record<string, string>,
): string {
  return consolePage(
    frame,
    tab,
    question.title,
    html`<p>${question.consequence}</p>
<div class="actions">${action(frame, question.path, { ...fields, confirm: 'yes' }, question.button, true)}
<a href="${question.back}">Cancel</a></div>`,
  );
}

export function notAdministratorPage(email: string, branding: Branding): string {
  return layout({
    title: 'Not an administrator',
    branding,
    body: html`<h1>Not an administrator</h1><p>You are signed in as <strong>${email}</strong>, who is not an administrator of this service.</p>
<p><a href="/session/end">Sign out</a> and sign in with an administrator's address, or go to <a href="/account">your agents</a>.</p>`,
  });
}
