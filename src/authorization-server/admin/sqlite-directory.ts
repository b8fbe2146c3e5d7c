/**
 * The directory (directory.ts) in the authorization server's SQLite database: one instance's store
 * (several instances share the directory through PostgreSQL, postgres-directory.ts).
 *
 * Statements are prepared once. Reads on the hot path (is this user approved? is this client
 * disabled?) are single primary-key lookups; the approved users and domains, the disabled clients
 * and the registered clients are also kept in memory, as every token request asks them, which holds
 * only because this process is the file's one writer. The calls answer synchronously, as resolved
 * promises.
 */
import type { DatabaseSync } from 'node:sqlite';
import type { ToolRule } from '../../shared/config/schema.ts';
import type { ClaimValue } from '../login/approved-users.ts';
import { transaction } from '../store/sqlite-store.ts';
import type {
  ApprovalStatus,
  ClientApproval,
  Directory,
  DirectoryDomain,
  DirectoryUser,
  EntrySource,
  RegisteredClient,
  SeedKind,
  SeenClient,
  ToolRuleOverride,
  TrustedDomain,
} from './directory.ts';

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS directory_users (
    email TEXT PRIMARY KEY,
    name TEXT,
    claims TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE IF NOT EXISTS directory_domains (
    domain TEXT PRIMARY KEY,
    claims TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE IF NOT EXISTS directory_trusted_domains (
    domain TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE IF NOT EXISTS directory_removed_seeds (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (kind, key)
  ) STRICT;
  CREATE TABLE IF NOT EXISTS client_states (
    client_id TEXT PRIMARY KEY,
    disabled_at INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE IF NOT EXISTS seen_clients (
    client_id TEXT PRIMARY KEY,
    name TEXT,
    first_seen_at INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE IF NOT EXISTS registered_clients (
    client_id TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('agent', 'workload')),
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL
  ) STRICT;
  CREATE TABLE IF NOT EXISTS tool_rules (
    tool       TEXT PRIMARY KEY,
    rule       TEXT,
    updated_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS client_approvals (
    client_id TEXT PRIMARY KEY,
    client_class TEXT NOT NULL,
    name TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    scopes TEXT NOT NULL,
    metadata TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
    requested_by TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    decided_by TEXT,
    decided_at INTEGER
  ) STRICT;
`;

/** A client's last use is written at most once a minute: a token per second must not be a write per second. */
const SEEN_WRITE_INTERVAL_MS = 60_000;

type Row = Record<string, unknown>;

const parseClaims = (text: unknown) => JSON.parse(String(text)) as Record<string, ClaimValue>;

function userOf(row: Row): DirectoryUser {
  return {
    email: String(row.email),
    ...(row.name !== null ? { name: String(row.name) } : {}),
    claims: parseClaims(row.claims),
    status: row.status === 'suspended' ? 'suspended' : 'active',
    source: row.source as EntrySource,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

function registeredOf(row: Row): RegisteredClient {
  return {
    clientId: String(row.client_id),
    role: row.role as RegisteredClient['role'],
    metadata: JSON.parse(String(row.metadata)) as Record<string, unknown>,
    createdAt: Number(row.created_at),
    createdBy: String(row.created_by),
  };
}

function domainOf(row: Row): DirectoryDomain {
  return {
    domain: String(row.domain),
    claims: parseClaims(row.claims),
    source: row.source as EntrySource,
    createdAt: Number(row.created_at),
  };
}

function approvalOf(row: Row): ClientApproval {
  return {
    clientId: String(row.client_id),
    clientClass: row.client_class as ClientApproval['clientClass'],
    name: String(row.name),
    redirectUris: JSON.parse(String(row.redirect_uris)) as string[],
    scopes: JSON.parse(String(row.scopes)) as string[],
    metadata: JSON.parse(String(row.metadata)) as Record<string, unknown>,
    status: row.status as ApprovalStatus,
    requestedBy: String(row.requested_by),
    requestedAt: Number(row.requested_at),
    ...(row.decided_by !== null ? { decidedBy: String(row.decided_by) } : {}),
    ...(row.decided_at !== null ? { decidedAt: Number(row.decided_at) } : {}),
  };
}

function toolRuleOf(row: Row): ToolRuleOverride {
  return {
    tool: String(row.tool),
    rule: row.rule === null ? null : (JSON.parse(String(row.rule)) as ToolRule),
    updatedBy: String(row.updated_by),
    updatedAt: Number(row.updated_at),
  };
}

/** `%` and `_` in a search are letters, not wildcards. */
const likePattern = (search: string) => `%${search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

export function createSqliteDirectory(db: DatabaseSync): Directory {
  db.exec(SCHEMA);
  const q = {
    users: db.prepare('SELECT * FROM directory_users ORDER BY email'),
    usersLike: db.prepare(
      "SELECT * FROM directory_users WHERE email LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\' ORDER BY email",
    ),
    user: db.prepare('SELECT * FROM directory_users WHERE email = ?'),
    putUser: db.prepare(
      `INSERT INTO directory_users (email, name, claims, status, source, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (email) DO UPDATE SET name = excluded.name, claims = excluded.claims,
         status = excluded.status, source = excluded.source, updated_at = excluded.updated_at`,
    ),
    removeUser: db.prepare('DELETE FROM directory_users WHERE email = ?'),
    domains: db.prepare('SELECT * FROM directory_domains ORDER BY domain'),
    domain: db.prepare('SELECT * FROM directory_domains WHERE domain = ?'),
    putDomain: db.prepare(
      `INSERT INTO directory_domains (domain, claims, source, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (domain) DO UPDATE SET claims = excluded.claims, source = excluded.source`,
    ),
    removeDomain: db.prepare('DELETE FROM directory_domains WHERE domain = ?'),
    trusted: db.prepare('SELECT * FROM directory_trusted_domains ORDER BY domain'),
    addTrusted: db.prepare(
      'INSERT INTO directory_trusted_domains (domain, source, created_at) VALUES (?, ?, ?) ON CONFLICT (domain) DO NOTHING',
    ),
    trustedOne: db.prepare('SELECT * FROM directory_trusted_domains WHERE domain = ?'),
    removeTrusted: db.prepare('DELETE FROM directory_trusted_domains WHERE domain = ?'),
    toolRules: db.prepare('SELECT * FROM tool_rules ORDER BY tool'),
    putToolRule: db.prepare(
      `INSERT INTO tool_rules (tool, rule, updated_by, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (tool) DO UPDATE SET rule = excluded.rule, updated_by = excluded.updated_by,
         updated_at = excluded.updated_at`,
    ),
    removeToolRule: db.prepare('DELETE FROM tool_rules WHERE tool = ?'),
    removedSeed: db.prepare('SELECT 1 FROM directory_removed_seeds WHERE kind = ? AND key = ?'),
    markRemoved: db.prepare(
      'INSERT INTO directory_removed_seeds (kind, key) VALUES (?, ?) ON CONFLICT DO NOTHING',
    ),
    clearRemoved: db.prepare('DELETE FROM directory_removed_seeds WHERE kind = ? AND key = ?'),
    disabled: db.prepare('SELECT client_id, disabled_at FROM client_states'),
    disable: db.prepare(
      'INSERT INTO client_states (client_id, disabled_at) VALUES (?, ?) ON CONFLICT (client_id) DO NOTHING',
    ),
    enable: db.prepare('DELETE FROM client_states WHERE client_id = ?'),
    seen: db.prepare(
      `INSERT INTO seen_clients (client_id, name, first_seen_at, last_used_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (client_id) DO UPDATE SET name = coalesce(excluded.name, name), last_used_at = excluded.last_used_at`,
    ),
    listSeen: db.prepare('SELECT * FROM seen_clients ORDER BY last_used_at DESC'),
    forgetSeen: db.prepare('DELETE FROM seen_clients WHERE client_id = ?'),
    forgetApproval: db.prepare('DELETE FROM client_approvals WHERE client_id = ?'),
    registered: db.prepare('SELECT * FROM registered_clients WHERE client_id = ?'),
    registeredAll: db.prepare('SELECT * FROM registered_clients ORDER BY created_at DESC'),
    register: db.prepare(
      'INSERT INTO registered_clients (client_id, role, metadata, created_at, created_by) VALUES (?, ?, ?, ?, ?)',
    ),
    unregister: db.prepare('DELETE FROM registered_clients WHERE client_id = ?'),
    approval: db.prepare('SELECT * FROM client_approvals WHERE client_id = ?'),
    approvals: db.prepare('SELECT * FROM client_approvals ORDER BY requested_at DESC'),
    approvalsBy: db.prepare('SELECT * FROM client_approvals WHERE status = ? ORDER BY requested_at DESC'),
    request: db.prepare(
      `INSERT INTO client_approvals
         (client_id, client_class, name, redirect_uris, scopes, metadata, status, requested_by, requested_at)
       VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)
       ON CONFLICT (client_id) DO UPDATE SET requested_by = excluded.requested_by,
         requested_at = excluded.requested_at, name = excluded.name, redirect_uris = excluded.redirect_uris,
         scopes = excluded.scopes, metadata = excluded.metadata
       WHERE status = 'pending'`,
    ),
    decide: db.prepare(
      'UPDATE client_approvals SET status = ?, decided_by = ?, decided_at = ? WHERE client_id = ?',
    ),
  };
  const lastSeenWrite = new Map<string, number>();
  // The approved users and domains, kept in memory as the disabled clients are: read on every
  // token use, written only by an administrator or at start (this process is the only writer).
  const disabledClients = new Map<string, number>();
  const usersByEmail = new Map<string, DirectoryUser>();
  const domainsByName = new Map<string, DirectoryDomain>();
  const registered = new Map<string, RegisteredClient>();
  /** Fills the copies from the tables: at start, and after a rolled back `exclusively`. */
  const load = () => {
    disabledClients.clear();
    usersByEmail.clear();
    domainsByName.clear();
    registered.clear();
    for (const row of q.disabled.all()) disabledClients.set(String(row.client_id), Number(row.disabled_at));
    for (const row of q.users.all()) usersByEmail.set(String(row.email), userOf(row));
    for (const row of q.domains.all()) domainsByName.set(String(row.domain), domainOf(row));
    for (const row of q.registeredAll.all()) registered.set(String(row.client_id), registeredOf(row));
  };
  load();

  const directory: Directory = {
    users: {
      list: async (search) =>
        (search ? q.usersLike.all(likePattern(search), likePattern(search)) : q.users.all()).map(userOf),
      // From memory: every introspection and token exchange asks whether its user is still approved.
      get: async (email) => usersByEmail.get(email),
      put: async (user) => {
        const now = Date.now();
        q.putUser.run(
          user.email,
          user.name ?? null,
          JSON.stringify(user.claims),
          user.status,
          user.source,
          now,
          now,
        );
        const stored = userOf(q.user.get(user.email)!);
        usersByEmail.set(stored.email, stored);
        return stored;
      },
      remove: async (email) => {
        usersByEmail.delete(email);
        return Number(q.removeUser.run(email).changes) > 0;
      },
    },
    domains: {
      list: async () => q.domains.all().map(domainOf),
      get: async (domain) => domainsByName.get(domain),
      put: async (entry): Promise<DirectoryDomain> => {
        q.putDomain.run(entry.domain, JSON.stringify(entry.claims), entry.source, Date.now());
        const stored = domainOf(q.domain.get(entry.domain)!);
        domainsByName.set(stored.domain, stored);
        return stored;
      },
      remove: async (domain) => {
        domainsByName.delete(domain);
        return Number(q.removeDomain.run(domain).changes) > 0;
      },
    },
    trustedDomains: {
      list: async () =>
        q.trusted.all().map((row) => ({
          domain: String(row.domain),
          source: row.source as EntrySource,
          createdAt: Number(row.created_at),
        })),
      add: async (domain, source): Promise<TrustedDomain> => {
        q.addTrusted.run(domain, source, Date.now());
        const row = q.trustedOne.get(domain)!;
        return { domain, source: row.source as EntrySource, createdAt: Number(row.created_at) };
      },
      remove: async (domain) => Number(q.removeTrusted.run(domain).changes) > 0,
    },
    toolRules: {
      list: async () => q.toolRules.all().map(toolRuleOf),
      put: async (entry) => {
        const updatedAt = Date.now();
        q.putToolRule.run(
          entry.tool,
          entry.rule === null ? null : JSON.stringify(entry.rule),
          entry.updatedBy,
          updatedAt,
        );
        return { ...entry, updatedAt };
      },
      remove: async (tool) => Number(q.removeToolRule.run(tool).changes) > 0,
    },
    clients: {
      disabledSince: async (clientId) => disabledClients.get(clientId),
      setDisabled: async (clientId, disabled) => {
        if (disabled) {
          const at = Date.now();
          q.disable.run(clientId, at);
          if (!disabledClients.has(clientId)) disabledClients.set(clientId, at);
        } else {
          q.enable.run(clientId);
          disabledClients.delete(clientId);
        }
      },
      listDisabled: async () => new Map(disabledClients),
      recordSeen: async (clientId, name) => {
        const now = Date.now();
        const last = lastSeenWrite.get(clientId);
        if (last !== undefined && now - last < SEEN_WRITE_INTERVAL_MS) return;
        if (lastSeenWrite.size >= 10_000) lastSeenWrite.clear();
        lastSeenWrite.set(clientId, now);
        q.seen.run(clientId, name ?? null, now, now);
      },
      listSeen: async (): Promise<SeenClient[]> =>
        q.listSeen.all().map((row) => ({
          clientId: String(row.client_id),
          ...(row.name !== null ? { name: String(row.name) } : {}),
          firstSeenAt: Number(row.first_seen_at),
          lastUsedAt: Number(row.last_used_at),
        })),
      forgetSeen: async (clientId) => {
        q.forgetSeen.run(clientId);
        lastSeenWrite.delete(clientId);
      },
      forget: async (clientId) =>
        transaction(db, () => {
          q.forgetSeen.run(clientId);
          q.forgetApproval.run(clientId);
          q.enable.run(clientId);
          disabledClients.delete(clientId);
          lastSeenWrite.delete(clientId);
        }),
    },
    registeredClients: {
      // From memory: every token request classifies its client, more than once.
      get: async (clientId) => registered.get(clientId),
      list: async () => [...registered.values()].sort((a, b) => b.createdAt - a.createdAt),
      add: async (client) => {
        q.register.run(
          client.clientId,
          client.role,
          JSON.stringify(client.metadata),
          Date.now(),
          client.createdBy,
        );
        const added = registeredOf(q.registered.get(client.clientId)!);
        registered.set(added.clientId, added);
        return added;
      },
      remove: async (clientId) => {
        registered.delete(clientId);
        return Number(q.unregister.run(clientId).changes) > 0;
      },
    },
    approvals: {
      get: async (clientId) => {
        const row = q.approval.get(clientId);
        return row ? approvalOf(row) : undefined;
      },
      list: async (status) => (status ? q.approvalsBy.all(status) : q.approvals.all()).map(approvalOf),
      request: async (approval) => {
        q.request.run(
          approval.clientId,
          approval.clientClass,
          approval.name,
          JSON.stringify(approval.redirectUris),
          JSON.stringify(approval.scopes),
          JSON.stringify(approval.metadata),
          approval.requestedBy,
          approval.requestedAt,
        );
        return approvalOf(q.approval.get(approval.clientId)!);
      },
      decide: async (clientId, status, by) => {
        q.decide.run(status, by, Date.now(), clientId);
        const row = q.approval.get(clientId);
        return row ? approvalOf(row) : undefined;
      },
    },
    seeds: {
      wasRemoved: async (kind: SeedKind, key) => q.removedSeed.get(kind, key) !== undefined,
      markRemoved: async (kind, key) => void q.markRemoved.run(kind, key),
      clearRemoved: async (kind, key) => void q.clearRemoved.run(kind, key),
    },
    // One process owns the file: a transaction is enough (BEGIN IMMEDIATE also holds off another
    // process sharing it). The calls inside answer at once, so nothing else runs in between.
    exclusively: async (fn) => {
      if (db.isTransaction) return fn(directory);
      db.exec('BEGIN IMMEDIATE');
      try {
        const result = await fn(directory);
        db.exec('COMMIT');
        return result;
      } catch (error) {
        if (db.isTransaction) db.exec('ROLLBACK');
        // The copies took the changes that were just rolled back.
        load();
        throw error;
      }
    },
  };
  return directory;
}
