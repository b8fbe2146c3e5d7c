/**
 * Every change an administrator can make, once, for the admin API (admin-api.ts) and the console
 * (console-routes.ts) alike: each takes the actor (an administrator's email, or `client:<id>` for
 * a script), validates its input, makes the change, makes it take effect at once (revocation
 * announcements reach every gateway and MCP server within a second), and writes an audit line
 * naming who did it.
 */
import type Provider from 'oidc-provider';
import type { Logger } from '../../shared/logging.ts';
import type { RevocationEvent } from '../../shared/revocation-events.ts';
import { FIRST_PARTY_CLIENT_ID } from '../account/first-party-sign-in.ts';
import type { ClientClassifier } from '../clients/client-classification.ts';
import type { PreparedClient } from '../clients/static-clients.ts';
import type { Accounts, ConsentGrant } from '../login/accounts.ts';
import {
  type ClaimValue,
  normalizeDomain,
  normalizeEmail,
  reservedClaimIn,
  subjectFor,
} from '../login/approved-users.ts';
import type { Mailer } from '../login/mailer.ts';
import type { OidcModelStore } from '../store/oidc-model-store.ts';
import { notFoundUnlessUnavailable } from '../store/postgres/connection.ts';
import { type NewClientInput, newClientMetadata } from './admin-clients.ts';
import { AdminError, conflict, invalid, notFound } from './admin-error.ts';
import type { ApprovalStatus, ClientApproval, Directory, DirectoryUser } from './directory.ts';

export type ClientTrustClass = 'pre-registered' | 'cimd-trusted' | 'cimd' | 'dynamic';

export interface AdminUserView {
  email: string;
  sub: string;
  name?: string;
  claims: Record<string, ClaimValue>;
  status: DirectoryUser['status'];
  source: DirectoryUser['source'];
  administrator: boolean;
  created_at: string;
  updated_at: string;
  last_sign_in_at?: string;
}

export interface AdminClientView {
  client_id: string;
  name?: string;
  trust_class: ClientTrustClass;
  registration: 'configuration' | 'administrator' | 'metadata document' | 'dynamic registration';
  role?: string;
  redirect_hosts: string[];
  scopes: string[];
  created_at?: string;
  last_used_at?: string;
  disabled: boolean;
  approval?: ApprovalStatus;
  /** Gatehouse cannot work without it (the gateway's, the MCP server's, the pages' own): never disabled. */
  essential?: true;
}

export interface AdminGrantView {
  grant_id: string;
  sub: string;
  email?: string;
  client_id: string;
  client_name?: string;
  scopes: string[];
  consented_at?: string;
  last_used_at?: string;
}

export interface AdminServiceDependencies {
  oidc: OidcModelStore;
  provider: Provider;
  directory: Directory;
  accounts: Accounts;
  subjectKey: string;
  isAdministrator: (email: string) => boolean;
  classifier: ClientClassifier;
  staticClients: PreparedClient[];
  isDocumentUrl: (clientId: string) => boolean;
  /** The MCP server's resource URI: the scopes of a grant are read from it. */
  mcpResource: string;
  /** Settles once the event is kept and streamed (or the listeners were cut off); never rejects. */
  announce: (event: RevocationEvent) => Promise<void>;
  mailer: Mailer;
  invitation: (email: string) => { subject: string; text: string };
  /** The MCP server's scopes: what an administrator's client may be limited to. */
  mcpScopes: ReadonlySet<string>;
  /** `authorizationServer.dpop.preRegistered` is `required`. */
  dpopRequired: boolean;
  /** Whether an agent registered here, authenticating so, gets refresh tokens. */
  refreshTokens?: (authMethod: string) => boolean;
  logger: Logger;
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
const nowSeconds = () => Math.floor(Date.now() / 1000);
const CLAIM_NAME = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;

/** Claims as an administrator may set them: names of letters and digits, values of the config's types. */
export function checkClaims(input: unknown, field = 'claims'): Record<string, ClaimValue> {
  if (input === undefined) return {};
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw invalid(field, 'must be an object of claim names to values');
  const claims: Record<string, ClaimValue> = {};
  const entries = Object.entries(input as Record<string, unknown>);
  if (entries.length > 50) throw invalid(field, 'at most 50 claims');
  for (const [name, value] of entries) {
    if (!CLAIM_NAME.test(name)) throw invalid(`${field}.${name}`, 'is not a valid claim name');
    const ok =
      (typeof value === 'string' && value.length <= 500) ||
      typeof value === 'boolean' ||
      (typeof value === 'number' && Number.isFinite(value)) ||
      (Array.isArray(value) &&
        value.length <= 50 &&
        value.every((item) => typeof item === 'string' && item.length <= 200));
    if (!ok) throw invalid(`${field}.${name}`, 'must be a string, number, boolean or list of strings');
    claims[name] = value as ClaimValue;
  }
  const reserved = reservedClaimIn(claims);
  if (reserved) throw invalid(`${field}.${reserved}`, 'is set by Gatehouse itself');
  return claims;
}

function checkName(input: unknown): string | undefined {
  if (input === undefined || input === null || input === '') return undefined;
  if (typeof input !== 'string' || input.length > 100 || /\p{Cc}/u.test(input))
    throw invalid('name', 'must be text of at most 100 characters');
  return input.trim();
}

function emailOrThrow(input: unknown, field = 'email'): string {
  const email = typeof input === 'string' ? normalizeEmail(input) : undefined;
  if (!email) throw invalid(field, 'is not a valid email address');
  return email;
}

function domainOrThrow(input: unknown, field = 'domain'): string {
  const domain = typeof input === 'string' ? normalizeDomain(input) : undefined;
  if (!domain) throw invalid(field, 'is not a domain name');
  return domain;
}

const hostsOf = (uris: unknown) => [
  ...new Set((Array.isArray(uris) ? uris : []).map((uri) => URL.parse(String(uri))?.host || String(uri))),
];

export type AdminService = ReturnType<typeof createAdminService>;

export function createAdminService(deps: AdminServiceDependencies) {
  const { directory, accounts, logger } = deps;
  const subOf = (email: string) => subjectFor(email, deps.subjectKey);
  const audit = (event: string, actor: string, fields: Record<string, unknown>) =>
    logger.audit(`admin.${event}`, { outcome: 'success', actor, ...fields });

  async function userView(user: DirectoryUser): Promise<AdminUserView> {
    const sub = subOf(user.email);
    const lastSignIn = iso(await accounts.lastLoginAt(sub));
    return {
      email: user.email,
      sub,
      ...(user.name ? { name: user.name } : {}),
      claims: user.claims,
      status: user.status,
      source: user.source,
      administrator: deps.isAdministrator(user.email),
      created_at: iso(user.createdAt)!,
      updated_at: iso(user.updatedAt)!,
      ...(lastSignIn ? { last_sign_in_at: lastSignIn } : {}),
    };
  }

  async function existingUser(emailInput: string): Promise<DirectoryUser> {
    const user = await directory.users.get(emailOrThrow(emailInput));
    if (!user) throw notFound('no such user');
    return user;
  }

  /** Revokes one grant at once: its tokens and codes, the grant, and every cache of it. */
  async function revokeGrantNow(grantId: string): Promise<void> {
    const { provider } = deps;
    await Promise.all([
      provider.AccessToken.revokeByGrantId(grantId),
      provider.RefreshToken.revokeByGrantId(grantId),
      provider.AuthorizationCode.revokeByGrantId(grantId),
      provider.Grant.adapter.destroy(grantId),
    ]);
    // Awaited here, so the answer comes once the consent index forgot it (the event's listener,
    // server.ts, cannot be awaited; it forgets again, which changes nothing).
    await accounts.forgetGrant(grantId);
    // The same event as RFC 7009 revocation: the announcement, the consent index, the audit line.
    provider.emit('grant.revoked', undefined, grantId);
  }

  /** Everything a user holds stops now: grants, tokens, sessions, and the caches of them. */
  async function cutOffUser(email: string): Promise<number> {
    const sub = subOf(email);
    const grants = await accounts.grants({ sub });
    for (const grant of grants) await revokeGrantNow(grant.grantId);
    await deps.oidc.removeSessionsOf(sub);
    await deps.announce({ type: 'subject', sub, at: nowSeconds() });
    return grants.length;
  }

  /** A client's name and redirect hosts, by one lookup (any kind: the provider resolves them all). */
  async function clientSummary(clientId: string): Promise<{ name?: string; redirectHosts: string[] }> {
    const client = await deps.provider.Client.find(clientId).catch(notFoundUnlessUnavailable);
    const metadata = (client?.metadata() ?? {}) as Record<string, unknown>;
    return {
      ...(typeof metadata.client_name === 'string' ? { name: metadata.client_name } : {}),
      redirectHosts: hostsOf(metadata.redirect_uris),
    };
  }

  async function grantView(grant: ConsentGrant): Promise<AdminGrantView | undefined> {
    const model = await deps.provider.Grant.find(grant.grantId);
    if (!model) return undefined;
    const scopes = [
      ...(model.getOIDCScope()?.split(' ').filter(Boolean) ?? []),
      ...(model.getResourceScope(deps.mcpResource)?.split(' ').filter(Boolean) ?? []),
    ];
    const email = await accounts.emailOf(grant.sub);
    const { name } = await clientSummary(grant.clientId);
    const iat = (model as unknown as { iat?: number }).iat;
    const lastUsed = iso(grant.lastUsedAt);
    return {
      grant_id: grant.grantId,
      sub: grant.sub,
      ...(email ? { email } : {}),
      client_id: grant.clientId,
      ...(name ? { client_name: name } : {}),
      scopes: [...new Set(scopes)],
      ...(iat ? { consented_at: new Date(iat * 1000).toISOString() } : {}),
      ...(lastUsed ? { last_used_at: lastUsed } : {}),
    };
  }

  async function trustClassOf(clientId: string): Promise<ClientTrustClass> {
    const classification = await deps.classifier.classify(clientId);
    if (classification.kind === 'pre-registered') return 'pre-registered';
    // The classification asked the trusted domains already: `verified` is its answer.
    if (classification.kind === 'cimd') return classification.verified ? 'cimd-trusted' : 'cimd';
    return 'dynamic';
  }

  async function listClients(): Promise<AdminClientView[]> {
    const [disabled, seenList, approvalList, registeredList] = await Promise.all([
      directory.clients.listDisabled(),
      directory.clients.listSeen(),
      directory.approvals.list(),
      directory.registeredClients.list(),
    ]);
    const seen = new Map(seenList.map((client) => [client.clientId, client]));
    const approvals = new Map(approvalList.map((approval) => [approval.clientId, approval]));
    const views: AdminClientView[] = [];
    const common = (clientId: string) => {
      const approval = approvals.get(clientId)?.status;
      return { disabled: disabled.has(clientId), ...(approval ? { approval } : {}) };
    };
    for (const client of deps.staticClients) {
      const id = client.config.clientId;
      const lastUsed = iso(seen.get(id)?.lastUsedAt);
      views.push({
        client_id: id,
        name: client.config.name,
        trust_class: 'pre-registered',
        registration: 'configuration',
        role: client.config.role,
        ...(client.config.role === 'gateway' ||
        client.config.role === 'mcp-server' ||
        id === FIRST_PARTY_CLIENT_ID
          ? { essential: true as const }
          : {}),
        redirect_hosts: hostsOf(client.config.redirectUris),
        scopes: client.config.scopes,
        ...(lastUsed ? { last_used_at: lastUsed } : {}),
        ...common(id),
      });
    }
    for (const registered of registeredList) {
      const id = registered.clientId;
      const lastUsed = iso(seen.get(id)?.lastUsedAt);
      views.push({
        client_id: id,
        name: String(registered.metadata.client_name),
        trust_class: 'pre-registered',
        registration: 'administrator',
        role: registered.role,
        redirect_hosts: hostsOf(registered.metadata.redirect_uris),
        scopes: String(registered.metadata.scope ?? '')
          .split(' ')
          .filter(Boolean),
        created_at: iso(registered.createdAt)!,
        ...(lastUsed ? { last_used_at: lastUsed } : {}),
        ...common(id),
      });
    }
    for (const stored of await deps.oidc.listStoredClients()) {
      const id = String(stored.metadata.client_id);
      const lastUsed = iso(stored.lastUsedAt ?? seen.get(id)?.lastUsedAt);
      views.push({
        client_id: id,
        ...(typeof stored.metadata.client_name === 'string' ? { name: stored.metadata.client_name } : {}),
        trust_class: 'dynamic',
        registration: 'dynamic registration',
        redirect_hosts: hostsOf(stored.metadata.redirect_uris),
        scopes: String(stored.metadata.scope ?? '')
          .split(' ')
          .filter(Boolean),
        created_at: iso(stored.createdAt)!,
        ...(lastUsed ? { last_used_at: lastUsed } : {}),
        ...common(id),
      });
    }
    const listed = new Set(views.map((view) => view.client_id));
    const documents = new Set([
      ...[...seen.keys()].filter((id) => deps.isDocumentUrl(id)),
      ...[...approvals.keys()].filter((id) => deps.isDocumentUrl(id)),
    ]);
    for (const id of documents) {
      if (listed.has(id)) continue;
      const client = seen.get(id);
      const approval = approvals.get(id);
      const name = client?.name ?? approval?.name;
      const lastUsed = iso(client?.lastUsedAt);
      views.push({
        client_id: id,
        ...(name ? { name } : {}),
        trust_class: await trustClassOf(id),
        registration: 'metadata document',
        redirect_hosts: hostsOf(approval?.redirectUris ?? []),
        scopes: approval?.scopes ?? [],
        created_at: iso(client?.firstSeenAt ?? approval?.requestedAt)!,
        ...(lastUsed ? { last_used_at: lastUsed } : {}),
        ...common(id),
      });
    }
    return views;
  }

  async function findClient(clientId: string): Promise<AdminClientView> {
    const client = (await listClients()).find((view) => view.client_id === clientId);
    if (!client) throw notFound('no such client');
    return client;
  }

  return {
    trustClassOf,
    clientSummary,

    async listUsers(search?: string): Promise<AdminUserView[]> {
      if (search !== undefined && search.length > 254) throw invalid('search', 'is too long');
      return Promise.all(
        (await directory.users.list(search?.trim().toLowerCase() || undefined)).map(userView),
      );
    },

    async getUser(email: string): Promise<AdminUserView> {
      return userView(await existingUser(email));
    },

    async addUser(
      actor: string,
      input: { email?: unknown; name?: unknown; claims?: unknown; invite?: unknown },
    ): Promise<AdminUserView> {
      const email = emailOrThrow(input.email);
      const name = checkName(input.name);
      const claims = checkClaims(input.claims);
      if (input.invite !== undefined && typeof input.invite !== 'boolean')
        throw invalid('invite', 'must be true or false');
      if (await directory.users.get(email)) throw conflict('this user is already approved');
      const user = await directory.users.put({
        email,
        ...(name ? { name } : {}),
        claims,
        status: 'active',
        source: 'administrator',
      });
      await directory.seeds.clearRemoved('user', email);
      audit('user.added', actor, { sub: subOf(email), invited: input.invite === true });
      if (input.invite === true) {
        // Not awaited for the answer's sake, but its failure is told: the administrator may resend.
        await deps.mailer.send({ to: email, ...deps.invitation(email) }).catch(() => {
          logger.error('could not send an invitation', { sub: subOf(email) });
          throw new AdminError(
            502,
            'mail_failed',
            'the user was added, but the invitation could not be sent',
          );
        });
      }
      return userView(user);
    },

    async updateUser(
      actor: string,
      emailInput: string,
      input: { name?: unknown; claims?: unknown; status?: unknown },
    ): Promise<AdminUserView> {
      const user = await existingUser(emailInput);
      if (input.status !== undefined && input.status !== 'active' && input.status !== 'suspended')
        throw invalid('status', 'must be "active" or "suspended"');
      const name = input.name === undefined ? user.name : checkName(input.name);
      const claims = input.claims === undefined ? user.claims : checkClaims(input.claims);
      const status = (input.status as DirectoryUser['status'] | undefined) ?? user.status;
      const updated = await directory.users.put({
        email: user.email,
        ...(name ? { name } : {}),
        claims,
        status,
        // Changed by an administrator: the configuration file no longer touches it (seed.ts).
        source: 'administrator',
      });
      const sub = subOf(user.email);
      if (status === 'suspended' && user.status !== 'suspended') {
        const grants = await cutOffUser(user.email);
        audit('user.suspended', actor, { sub, grants_revoked: grants });
      } else if (status === 'active' && user.status === 'suspended') {
        audit('user.reinstated', actor, { sub });
      }
      if (input.claims !== undefined || input.name !== undefined)
        audit('user.updated', actor, { sub, claims: Object.keys(claims).join(' ') });
      return userView(updated);
    },

    async removeUser(actor: string, emailInput: string): Promise<void> {
      const user = await existingUser(emailInput);
      await directory.users.remove(user.email);
      // A seed of the file stays removed across restarts (seed.ts).
      // Whatever its source: the file must not bring back someone an administrator removed (seed.ts).
      await directory.seeds.markRemoved('user', user.email);
      const grants = await cutOffUser(user.email);
      audit('user.removed', actor, { sub: subOf(user.email), grants_revoked: grants });
    },

    async signOutEverywhere(actor: string, emailInput: string): Promise<number> {
      const email = emailOrThrow(emailInput);
      const sessions = await deps.oidc.removeSessionsOf(subOf(email));
      audit('user.signed_out', actor, { sub: subOf(email), sessions });
      return sessions;
    },

    async listDomains() {
      return (await directory.domains.list()).map((entry) => ({
        domain: entry.domain,
        claims: entry.claims,
        source: entry.source,
        created_at: iso(entry.createdAt)!,
      }));
    },

    async addDomain(actor: string, input: { domain?: unknown; claims?: unknown }) {
      const domain = domainOrThrow(input.domain);
      const claims = checkClaims(input.claims);
      if (await directory.domains.get(domain)) throw conflict('this domain is already approved');
      const entry = await directory.domains.put({ domain, claims, source: 'administrator' });
      await directory.seeds.clearRemoved('domain', domain);
      audit('domain.added', actor, { domain });
      return { domain, claims, source: entry.source, created_at: iso(entry.createdAt)! };
    },

    async removeDomain(actor: string, domainInput: string): Promise<void> {
      const domain = domainOrThrow(domainInput);
      const entry = await directory.domains.get(domain);
      if (!entry) throw notFound('no such domain');
      await directory.domains.remove(domain);
      await directory.seeds.markRemoved('domain', domain);
      // Its users without an entry of their own are approved by nothing now: cut off at once.
      let cut = 0;
      const emails = await accounts.emailsOf(await accounts.subjects());
      for (const email of emails.values()) {
        if (
          !email ||
          email.slice(email.lastIndexOf('@') + 1) !== domain ||
          (await directory.users.get(email))
        )
          continue;
        await cutOffUser(email);
        cut++;
      }
      audit('domain.removed', actor, { domain, users_cut_off: cut });
    },

    async listTrustedDomains() {
      return (await directory.trustedDomains.list()).map((entry) => ({
        domain: entry.domain,
        source: entry.source,
        created_at: iso(entry.createdAt)!,
      }));
    },

    async addTrustedDomain(actor: string, input: { domain?: unknown }) {
      const domain = domainOrThrow(input.domain);
      const entry = await directory.trustedDomains.add(domain, 'administrator');
      await directory.seeds.clearRemoved('trusted-domain', domain);
      audit('trusted_domain.added', actor, { domain });
      return { domain, source: entry.source, created_at: iso(entry.createdAt)! };
    },

    async removeTrustedDomain(actor: string, domainInput: string): Promise<void> {
      const domain = domainOrThrow(domainInput);
      const entry = (await directory.trustedDomains.list()).find((item) => item.domain === domain);
      if (!entry) throw notFound('no such trusted domain');
      await directory.trustedDomains.remove(domain);
      await directory.seeds.markRemoved('trusted-domain', domain);
      audit('trusted_domain.removed', actor, { domain });
    },

    listClients,
    getClient: findClient,

    async setClientDisabled(actor: string, clientId: string, disabled: boolean): Promise<AdminClientView> {
      const client = await findClient(clientId);
      const role = deps.classifier.configured(clientId)?.role;
      if (disabled && (role === 'gateway' || role === 'mcp-server'))
        throw conflict('the gateway and the MCP server cannot work without their own clients');
      // Disabling the pages' own client would lock every administrator out of the console.
      if (disabled && clientId === FIRST_PARTY_CLIENT_ID)
        throw conflict('the account page and the admin console sign in with this client');
      await directory.clients.setDisabled(clientId, disabled);
      if (disabled) {
        // Its tokens stop now: the stored ones go, the caches are told, and lookups fail (server.ts).
        await deps.oidc.removeClientTokens(clientId);
        for (const grant of await accounts.grants({ clientId })) await accounts.forgetGrant(grant.grantId);
        await deps.announce({ type: 'client', client_id: clientId, at: nowSeconds() });
      }
      audit(disabled ? 'client.disabled' : 'client.enabled', actor, { client_id: clientId });
      return { ...client, disabled };
    },

    async deleteClient(actor: string, clientId: string): Promise<void> {
      const client = await findClient(clientId);
      if (client.registration === 'configuration')
        throw conflict(
          'this client is defined in the configuration file: disable it here, or remove it from the file',
        );
      if (client.registration === 'administrator') {
        await directory.registeredClients.remove(clientId);
        await deps.oidc.removeClientRows(clientId);
      } else if (client.registration === 'dynamic registration') {
        // Its registration with every grant, token and registration access token (as RFC 7592 deletion).
        await deps.oidc.removeClientRows(clientId);
      } else {
        // A metadata document cannot be unpublished from here: its grants and tokens go, and the
        // client may come back (through the approval queue, if the policy asks for it).
        await deps.oidc.removeClientTokens(clientId);
      }
      for (const grant of await accounts.grants({ clientId })) await accounts.forgetGrant(grant.grantId);
      // A metadata document's URL may come back: its disabled state and the approval decision stay,
      // so deleting it is never weaker than disabling or denying it. Other ids are gone for good.
      if (client.registration === 'metadata document') await directory.clients.forgetSeen(clientId);
      else await directory.clients.forget(clientId);
      await deps.announce({ type: 'client', client_id: clientId, at: nowSeconds() });
      audit('client.deleted', actor, { client_id: clientId });
    },

    /** Pre-registers a client; a generated secret is in the answer, and never again. */
    async registerClient(
      actor: string,
      input: NewClientInput,
    ): Promise<AdminClientView & { client_secret?: string }> {
      const built = newClientMetadata(input, {
        mcpScopes: deps.mcpScopes,
        dpopRequired: deps.dpopRequired,
        ...(deps.refreshTokens ? { refreshTokens: deps.refreshTokens } : {}),
      });
      const taken =
        deps.staticClients.some((client) => client.config.clientId === built.clientId) ||
        (await directory.registeredClients.get(built.clientId)) !== undefined ||
        (await deps.provider.Client.find(built.clientId).catch(notFoundUnlessUnavailable)) !== undefined;
      if (taken) throw new AdminError(409, 'conflict', 'a client with this id exists', 'client_id');
      try {
        await directory.registeredClients.add({
          clientId: built.clientId,
          role: built.role,
          metadata: built.metadata,
          createdBy: actor,
        });
      } catch (error) {
        // Taken meanwhile (another instance registered the same id after the check above): the
        // same conflict, not a server error. Anything else (the store cannot answer) goes on.
        if ((await directory.registeredClients.get(built.clientId)) === undefined) throw error;
        throw new AdminError(409, 'conflict', 'a client with this id exists', 'client_id');
      }
      audit('client.registered', actor, {
        client_id: built.clientId,
        role: built.role,
        auth_method: String(built.metadata.token_endpoint_auth_method),
      });
      return {
        ...(await findClient(built.clientId)),
        ...(built.secret ? { client_secret: built.secret } : {}),
      };
    },

    async listGrants(filter: { email?: string; clientId?: string }): Promise<AdminGrantView[]> {
      const sub = filter.email !== undefined ? subOf(emailOrThrow(filter.email, 'user')) : undefined;
      const grants = await accounts.grants({
        ...(sub !== undefined ? { sub } : {}),
        ...(filter.clientId !== undefined ? { clientId: filter.clientId } : {}),
      });
      const views = await Promise.all(grants.map(grantView));
      return views.filter((view) => view !== undefined);
    },

    async revokeGrant(actor: string, grantId: string, onlyFor?: { sub: string }): Promise<AdminGrantView> {
      if (!/^[A-Za-z0-9_-]{1,128}$/.test(grantId)) throw invalid('grant_id', 'is not a grant id');
      const grant = (await accounts.grants(onlyFor ?? {})).find((item) => item.grantId === grantId);
      if (!grant) throw notFound('no such grant');
      const view = await grantView(grant);
      await revokeGrantNow(grantId);
      audit('grant.revoked', actor, { grant_id: grantId, sub: grant.sub, client_id: grant.clientId });
      return view ?? { grant_id: grantId, sub: grant.sub, client_id: grant.clientId, scopes: [] };
    },

    async listApprovals(status?: unknown): Promise<ClientApproval[]> {
      if (status !== undefined && status !== 'pending' && status !== 'approved' && status !== 'denied')
        throw invalid('status', 'must be pending, approved or denied');
      return directory.approvals.list(status as ApprovalStatus | undefined);
    },

    async decideApproval(actor: string, clientId: string, decision: unknown): Promise<ClientApproval> {
      if (decision !== 'approved' && decision !== 'denied')
        throw invalid('decision', 'must be "approved" or "denied"');
      const decided = await directory.approvals.decide(clientId, decision, actor);
      if (!decided) throw notFound('no such client in the approval queue');
      if (decision === 'denied') {
        await deps.oidc.removeClientTokens(clientId);
        await deps.announce({ type: 'client', client_id: clientId, at: nowSeconds() });
      }
      audit(decision === 'approved' ? 'client.approved' : 'client.denied', actor, { client_id: clientId });
      return decided;
    },
  };
}
