/**
 * The directory (directory.ts) in the shared PostgreSQL database: the same tables and answers as
 * sqlite-directory.ts, so every instance on the database sees the same users, domains, trusted
 * domains, disabled and registered clients, approval queue and removed seeds. Nothing is kept in
 * memory but a write throttle: a client disabled or a user suspended at one instance is refused by
 * the next request at any other. Every call is one statement (or one transaction); a database that
 * cannot answer raises StoreUnavailableError (503), never a guess.
 */
import type { ToolRule } from '../../shared/config/schema.ts';
import type { ClaimValue } from '../login/approved-users.ts';
import type { Postgres, Queryable } from '../store/postgres/connection.ts';
import type { Migration } from '../store/postgres/migrations.ts';
import type {
  ApprovalStatus,
  ClientApproval,
  Directory,
  DirectoryDomain,
  DirectoryUser,
  EntrySource,
  RegisteredClient,
  SeenClient,
  ToolRuleOverride,
  TrustedDomain,
} from './directory.ts';

export const DIRECTORY_MIGRATIONS: readonly Migration[] = [
  {
    id: 'directory-1',
    sql: `
      CREATE TABLE directory_users (
        email      text   PRIMARY KEY,
        name       text,
        claims     jsonb  NOT NULL,
        status     text   NOT NULL CHECK (status IN ('active', 'suspended')),
        source     text   NOT NULL,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL
      );
      CREATE TABLE directory_domains (
        domain     text   PRIMARY KEY,
        claims     jsonb  NOT NULL,
        source     text   NOT NULL,
        created_at bigint NOT NULL
      );
      CREATE TABLE directory_trusted_domains (
        domain     text   PRIMARY KEY,
        source     text   NOT NULL,
        created_at bigint NOT NULL
      );
      CREATE TABLE directory_removed_seeds (
        kind text NOT NULL,
        key  text NOT NULL,
        PRIMARY KEY (kind, key)
      );
      CREATE TABLE client_states (
        client_id   text   PRIMARY KEY,
        disabled_at bigint NOT NULL
      );
      CREATE TABLE seen_clients (
        client_id     text   PRIMARY KEY,
        name          text,
        first_seen_at bigint NOT NULL,
        last_used_at  bigint NOT NULL
      );
      CREATE TABLE registered_clients (
        client_id  text   PRIMARY KEY,
        role       text   NOT NULL CHECK (role IN ('agent', 'workload')),
        metadata   jsonb  NOT NULL,
        created_at bigint NOT NULL,
        created_by text   NOT NULL
      );
      CREATE TABLE client_approvals (
        client_id     text   PRIMARY KEY,
        client_class  text   NOT NULL,
        name          text   NOT NULL,
        redirect_uris jsonb  NOT NULL,
        scopes        jsonb  NOT NULL,
        metadata      jsonb  NOT NULL,
        status        text   NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
        requested_by  text   NOT NULL,
        requested_at  bigint NOT NULL,
        decided_by    text,
        decided_at    bigint
      );
    `,
  },
  {
    id: 'directory-2-tool-rules',
    sql: `
      CREATE TABLE tool_rules (
        tool       text   PRIMARY KEY,
        rule       jsonb,
        updated_by text   NOT NULL,
        updated_at bigint NOT NULL
      );
    `,
  },
];

/**
 * pg_advisory_xact_lock's key for `exclusively` (the start's seeding): a constant no other lock of
 * this database uses (the migrations' is 7_401_221_337; the throttles use the two-key form).
 */
export const DIRECTORY_LOCK = 7_401_221_338;

/** A client's last use is written at most once a minute per instance, as with SQLite. */
const SEEN_WRITE_INTERVAL_MS = 60_000;

type Row = Record<string, unknown>;

const json = (value: unknown) => JSON.stringify(value);

function userOf(row: Row): DirectoryUser {
  return {
    email: String(row.email),
    ...(row.name !== null ? { name: String(row.name) } : {}),
    claims: row.claims as Record<string, ClaimValue>,
    status: row.status === 'suspended' ? 'suspended' : 'active',
    source: row.source as EntrySource,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

function domainOf(row: Row): DirectoryDomain {
  return {
    domain: String(row.domain),
    claims: row.claims as Record<string, ClaimValue>,
    source: row.source as EntrySource,
    createdAt: Number(row.created_at),
  };
}

function toolRuleOf(row: Row): ToolRuleOverride {
  return {
    tool: String(row.tool),
    rule: (row.rule ?? null) as ToolRule | null,
    updatedBy: String(row.updated_by),
    updatedAt: Number(row.updated_at),
  };
}

function trustedOf(row: Row): TrustedDomain {
  return { domain: String(row.domain), source: row.source as EntrySource, createdAt: Number(row.created_at) };
}

function registeredOf(row: Row): RegisteredClient {
  return {
    clientId: String(row.client_id),
    role: row.role as RegisteredClient['role'],
    metadata: row.metadata as Record<string, unknown>,
    createdAt: Number(row.created_at),
    createdBy: String(row.created_by),
  };
}

function seenOf(row: Row): SeenClient {
  return {
    clientId: String(row.client_id),
    ...(row.name !== null ? { name: String(row.name) } : {}),
    firstSeenAt: Number(row.first_seen_at),
    lastUsedAt: Number(row.last_used_at),
  };
}

function approvalOf(row: Row): ClientApproval {
  return {
    clientId: String(row.client_id),
    clientClass: row.client_class as ClientApproval['clientClass'],
    name: String(row.name),
    redirectUris: row.redirect_uris as string[],
    scopes: row.scopes as string[],
    metadata: row.metadata as Record<string, unknown>,
    status: row.status as ApprovalStatus,
    requestedBy: String(row.requested_by),
    requestedAt: Number(row.requested_at),
    ...(row.decided_by !== null ? { decidedBy: String(row.decided_by) } : {}),
    ...(row.decided_at !== null ? { decidedAt: Number(row.decided_at) } : {}),
  };
}

/** `%` and `_` in a search are letters, not wildcards (as with SQLite). */
const likePattern = (search: string) => `%${search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** Byte order, as SQLite sorts text, whatever the database's collation. */
const C = 'COLLATE "C"';

export function postgresDirectory(db: Postgres): Directory {
  const lastSeenWrite = new Map<string, number>();

  /** The directory on `q`: the pool, or the transaction of `exclusively`. */
  function directoryOn(q: Queryable): Directory {
    const one = async (text: string, values: readonly unknown[]) => (await q.query(text, values))[0];
    const changed = async (text: string, values: readonly unknown[]) =>
      (await q.query(`${text} RETURNING 1`, values)).length > 0;
    const directory: Directory = {
      users: {
        list: async (search) => {
          const rows = search
            ? await q.query(
                `SELECT * FROM directory_users WHERE email ILIKE $1 ESCAPE '\\' OR name ILIKE $1 ESCAPE '\\'
                 ORDER BY email ${C}`,
                [likePattern(search)],
              )
            : await q.query(`SELECT * FROM directory_users ORDER BY email ${C}`);
          return rows.map(userOf);
        },
        get: async (email) => {
          const row = await one('SELECT * FROM directory_users WHERE email = $1', [email]);
          return row ? userOf(row) : undefined;
        },
        put: async (user) => {
          const now = Date.now();
          const row = await one(
            `INSERT INTO directory_users (email, name, claims, status, source, created_at, updated_at)
             VALUES ($1, $2, $3::jsonb, $4, $5, $6, $6)
             ON CONFLICT (email) DO UPDATE SET name = excluded.name, claims = excluded.claims,
               status = excluded.status, source = excluded.source, updated_at = excluded.updated_at
             RETURNING *`,
            [user.email, user.name ?? null, json(user.claims), user.status, user.source, now],
          );
          return userOf(row!);
        },
        remove: (email) => changed('DELETE FROM directory_users WHERE email = $1', [email]),
      },
      domains: {
        list: async () =>
          (await q.query(`SELECT * FROM directory_domains ORDER BY domain ${C}`)).map(domainOf),
        get: async (domain) => {
          const row = await one('SELECT * FROM directory_domains WHERE domain = $1', [domain]);
          return row ? domainOf(row) : undefined;
        },
        put: async (entry) => {
          const row = await one(
            `INSERT INTO directory_domains (domain, claims, source, created_at) VALUES ($1, $2::jsonb, $3, $4)
             ON CONFLICT (domain) DO UPDATE SET claims = excluded.claims, source = excluded.source
             RETURNING *`,
            [entry.domain, json(entry.claims), entry.source, Date.now()],
          );
          return domainOf(row!);
        },
        remove: (domain) => changed('DELETE FROM directory_domains WHERE domain = $1', [domain]),
      },
      trustedDomains: {
        list: async () =>
          (await q.query(`SELECT * FROM directory_trusted_domains ORDER BY domain ${C}`)).map(trustedOf),
        add: async (domain, source) => {
          // The no-op update returns the row already there (its source and time stay), even when
          // another instance inserted it a moment ago; DO NOTHING would return nothing.
          const row = await one(
            `INSERT INTO directory_trusted_domains (domain, source, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (domain) DO UPDATE SET domain = excluded.domain
             RETURNING *`,
            [domain, source, Date.now()],
          );
          return trustedOf(row!);
        },
        remove: (domain) => changed('DELETE FROM directory_trusted_domains WHERE domain = $1', [domain]),
      },
      toolRules: {
        list: async () => (await q.query(`SELECT * FROM tool_rules ORDER BY tool ${C}`)).map(toolRuleOf),
        put: async (entry) => {
          const row = await one(
            `INSERT INTO tool_rules (tool, rule, updated_by, updated_at) VALUES ($1, $2::jsonb, $3, $4)
             ON CONFLICT (tool) DO UPDATE SET rule = excluded.rule, updated_by = excluded.updated_by,
               updated_at = excluded.updated_at
             RETURNING *`,
            [entry.tool, entry.rule === null ? null : json(entry.rule), entry.updatedBy, Date.now()],
          );
          return toolRuleOf(row!);
        },
        remove: (tool) => changed('DELETE FROM tool_rules WHERE tool = $1', [tool]),
      },
      clients: {
        disabledSince: async (clientId) => {
          const row = await one('SELECT disabled_at FROM client_states WHERE client_id = $1', [clientId]);
          return row ? Number(row.disabled_at) : undefined;
        },
        setDisabled: async (clientId, disabled) => {
          if (disabled)
            await q.query(
              'INSERT INTO client_states (client_id, disabled_at) VALUES ($1, $2) ON CONFLICT (client_id) DO NOTHING',
              [clientId, Date.now()],
            );
          else await q.query('DELETE FROM client_states WHERE client_id = $1', [clientId]);
        },
        listDisabled: async () =>
          new Map(
            (await q.query('SELECT client_id, disabled_at FROM client_states')).map((row) => [
              String(row.client_id),
              Number(row.disabled_at),
            ]),
          ),
        recordSeen: async (clientId, name) => {
          const now = Date.now();
          const last = lastSeenWrite.get(clientId);
          if (last !== undefined && now - last < SEEN_WRITE_INTERVAL_MS) return;
          if (lastSeenWrite.size >= 10_000) lastSeenWrite.clear();
          lastSeenWrite.set(clientId, now);
          // GREATEST: an instance whose stamp is older than another's never moves "last used" back.
          await q.query(
            `INSERT INTO seen_clients AS s (client_id, name, first_seen_at, last_used_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (client_id) DO UPDATE SET name = coalesce(excluded.name, s.name),
               last_used_at = GREATEST(s.last_used_at, excluded.last_used_at)`,
            [clientId, name ?? null, now],
          );
        },
        listSeen: async () =>
          (await q.query('SELECT * FROM seen_clients ORDER BY last_used_at DESC')).map(seenOf),
        forgetSeen: async (clientId) => {
          lastSeenWrite.delete(clientId);
          await q.query('DELETE FROM seen_clients WHERE client_id = $1', [clientId]);
        },
        forget: async (clientId) => {
          lastSeenWrite.delete(clientId);
          // One statement for the three tables: a client is never left half forgotten.
          await q.query(
            `WITH seen AS (DELETE FROM seen_clients WHERE client_id = $1),
                  approval AS (DELETE FROM client_approvals WHERE client_id = $1)
             DELETE FROM client_states WHERE client_id = $1`,
            [clientId],
          );
        },
      },
      registeredClients: {
        get: async (clientId) => {
          const row = await one('SELECT * FROM registered_clients WHERE client_id = $1', [clientId]);
          return row ? registeredOf(row) : undefined;
        },
        list: async () =>
          (await q.query('SELECT * FROM registered_clients ORDER BY created_at DESC')).map(registeredOf),
        add: async (client) => {
          // No ON CONFLICT: an id taken meanwhile by another instance fails, as with SQLite.
          const row = await one(
            `INSERT INTO registered_clients (client_id, role, metadata, created_at, created_by)
             VALUES ($1, $2, $3::jsonb, $4, $5) RETURNING *`,
            [client.clientId, client.role, json(client.metadata), Date.now(), client.createdBy],
          );
          return registeredOf(row!);
        },
        remove: (clientId) => changed('DELETE FROM registered_clients WHERE client_id = $1', [clientId]),
      },
      approvals: {
        get: async (clientId) => {
          const row = await one('SELECT * FROM client_approvals WHERE client_id = $1', [clientId]);
          return row ? approvalOf(row) : undefined;
        },
        list: async (status) =>
          (status
            ? await q.query('SELECT * FROM client_approvals WHERE status = $1 ORDER BY requested_at DESC', [
                status,
              ])
            : await q.query('SELECT * FROM client_approvals ORDER BY requested_at DESC')
          ).map(approvalOf),
        request: async (approval) => {
          // A decided client keeps its decision: the update applies to a pending row only. The
          // decided row is then read by the second SELECT (of the statement's snapshot), or, if it
          // was decided after that snapshot was taken, by one more read.
          const row = await one(
            `WITH queued AS (
               INSERT INTO client_approvals AS a
                 (client_id, client_class, name, redirect_uris, scopes, metadata, status, requested_by, requested_at)
               VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6::jsonb, 'pending', $7, $8)
               ON CONFLICT (client_id) DO UPDATE SET requested_by = excluded.requested_by,
                 requested_at = excluded.requested_at, name = excluded.name,
                 redirect_uris = excluded.redirect_uris, scopes = excluded.scopes, metadata = excluded.metadata
               WHERE a.status = 'pending'
               RETURNING *)
             SELECT * FROM queued
             UNION ALL
             SELECT * FROM client_approvals WHERE client_id = $1 AND NOT EXISTS (SELECT 1 FROM queued)`,
            [
              approval.clientId,
              approval.clientClass,
              approval.name,
              json(approval.redirectUris),
              json(approval.scopes),
              json(approval.metadata),
              approval.requestedBy,
              approval.requestedAt,
            ],
          );
          if (row) return approvalOf(row);
          return (await directory.approvals.get(approval.clientId))!;
        },
        decide: async (clientId, status, by) => {
          const row = await one(
            `UPDATE client_approvals SET status = $1, decided_by = $2, decided_at = $3 WHERE client_id = $4
             RETURNING *`,
            [status, by, Date.now(), clientId],
          );
          return row ? approvalOf(row) : undefined;
        },
      },
      seeds: {
        wasRemoved: async (kind, key) =>
          (await one('SELECT 1 FROM directory_removed_seeds WHERE kind = $1 AND key = $2', [kind, key])) !==
          undefined,
        markRemoved: async (kind, key) => {
          await q.query(
            'INSERT INTO directory_removed_seeds (kind, key) VALUES ($1, $2) ON CONFLICT DO NOTHING',
            [kind, key],
          );
        },
        clearRemoved: async (kind, key) => {
          await q.query('DELETE FROM directory_removed_seeds WHERE kind = $1 AND key = $2', [kind, key]);
        },
      },
      // Inside `exclusively` already: the same transaction covers fn.
      exclusively: (fn) => fn(directory),
    };
    return directory;
  }

  return {
    ...directoryOn(db),
    exclusively: (fn) =>
      db.transaction(async (tx) => {
        // Held until COMMIT: a second instance starting now waits here, then sees what this one did.
        await tx.query('SELECT pg_advisory_xact_lock($1)', [DIRECTORY_LOCK]);
        return fn(directoryOn(tx));
      }),
  };
}
