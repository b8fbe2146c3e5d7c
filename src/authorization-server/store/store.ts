/**
 * The authorization server's store, opened once at start from the configured location
 * (storage-location.ts): SQLite in the data directory by default, or PostgreSQL shared by every
 * instance. Each part of the server reaches its state through the interface of that part
 * (oidc-model-store.ts, ...), never through the database itself, so a second store is a new set
 * of implementations, not edits everywhere.
 *
 * With PostgreSQL, the parts not yet moved there (see docs/deployment.md, "Several instances")
 * still live in the SQLite file of each instance's data directory. The directory (users, domains,
 * clients, approvals; admin/directory.ts) is in PostgreSQL with the rest of what instances share.
 */

import type { DatabaseSync } from 'node:sqlite';
import type { Check } from '../../shared/health.ts';
import type { Logger } from '../../shared/logging.ts';
import type { Directory } from '../admin/directory.ts';
import { postgresDirectory } from '../admin/postgres-directory.ts';
import { createSqliteDirectory } from '../admin/sqlite-directory.ts';
import type { OperationApprovals } from '../approvals/operation-approvals.ts';
import { postgresOperationApprovals } from '../approvals/postgres-operation-approvals.ts';
import { createSqliteOperationApprovals } from '../approvals/sqlite-operation-approvals.ts';
import type { AuditStore } from '../audit/audit-store.ts';
import { postgresAuditStore } from '../audit/postgres-audit-store.ts';
import { createSqliteAuditStore } from '../audit/sqlite-audit-store.ts';
import type { Accounts } from '../login/accounts.ts';
import { createMemoryDevInbox, type DevInbox } from '../login/dev-inbox.ts';
import type { OneTimeCodesFactory } from '../login/one-time-codes.ts';
import { postgresAccounts } from '../login/postgres-accounts.ts';
import { postgresDevInbox } from '../login/postgres-dev-inbox.ts';
import { postgresOneTimeCodes } from '../login/postgres-one-time-codes.ts';
import { createSqliteAccounts } from '../login/sqlite-accounts.ts';
import { createSqliteOneTimeCodes } from '../login/sqlite-one-time-codes.ts';
import { DEFAULT_CLOCK_TOLERANCE_SECONDS, type OidcModelStore } from './oidc-model-store.ts';
import { connectPostgres, type Postgres } from './postgres/connection.ts';
import { migrate } from './postgres/migrations.ts';
import { postgresOidcModelStore } from './postgres/postgres-oidc-store.ts';
import { POSTGRES_MIGRATIONS } from './postgres/schema.ts';
import { closeDatabase, openDatabase, sqliteOidcModelStore } from './sqlite-store.ts';
import { requestWritesDurable, withRequestWrites } from './sqlite-write-batch.ts';
import { describeStorage, type StorageLocation } from './storage-location.ts';

/** How a request's answer waits for the writes it made (http/middleware.ts, durableWrites). */
export interface RequestWrites {
  run<T>(fn: () => T): T;
  durable(): Promise<void>;
}

export interface AuthorizationStore {
  readonly location: StorageLocation;
  /** For logs: the store without its password. */
  readonly description: string;
  readonly oidc: OidcModelStore;
  /** The audit trail's records (audit/audit-store.ts). */
  readonly audit: AuditStore;
  /** Who signed in, and their consents (login/accounts.ts). */
  readonly accounts: Accounts;
  /** The sign-in codes and their throttles, built with the server's login settings (login/one-time-codes.ts). */
  readonly oneTimeCodes: OneTimeCodesFactory;
  /**
   * Where mail goes without SMTP (login/dev-inbox.ts): in memory with SQLite (one instance), in the
   * database with PostgreSQL, so every instance's /dev/inbox shows every instance's mail.
   */
  readonly devInbox: DevInbox;
  /** What administrators change at run time: users, domains, clients, approvals (admin/directory.ts). */
  readonly directory: Directory;
  /** Approvals of single tool calls (approvals/operation-approvals.ts). */
  readonly operationApprovals: OperationApprovals;
  /** The SQLite database of this instance's data directory (the whole store, without PostgreSQL). */
  readonly sqlite: DatabaseSync;
  /** The PostgreSQL connections, when the store is PostgreSQL. */
  readonly postgres: Postgres | undefined;
  readonly requestWrites: RequestWrites;
  /** For /readyz: the store answers. */
  check(): Promise<Check>;
  /** Writes what is pending and closes every connection. */
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /** The data directory (the SQLite file, keys and generated secrets). */
  dataDir: string;
  /** Checkpoint SQLite's WAL in a worker (the server; sqlite-checkpointer.ts). */
  backgroundCheckpoints?: boolean;
  logger?: Logger;
}

/** SQLite's group commit: an answer waits for the commit of the writes it depends on. */
const SQLITE_REQUEST_WRITES: RequestWrites = { run: withRequestWrites, durable: requestWritesDurable };

function sqliteCheck(db: DatabaseSync): Check {
  try {
    db.prepare('SELECT 1 FROM oidc_models LIMIT 1').get();
    return { ok: true };
  } catch (error) {
    return { ok: false, error: (error as Error).message };
  }
}

export async function openStore(
  location: StorageLocation,
  options: OpenStoreOptions,
): Promise<AuthorizationStore> {
  const sqlite = openDatabase(options.dataDir, {
    backgroundCheckpoints: options.backgroundCheckpoints ?? false,
  });
  const description = describeStorage(location);
  if (location.kind === 'sqlite') {
    return {
      location,
      description,
      oidc: sqliteOidcModelStore(sqlite, { clockTolerance: DEFAULT_CLOCK_TOLERANCE_SECONDS }),
      audit: createSqliteAuditStore(sqlite),
      accounts: createSqliteAccounts(sqlite),
      oneTimeCodes: (settings) => createSqliteOneTimeCodes(sqlite, settings),
      devInbox: createMemoryDevInbox(),
      directory: createSqliteDirectory(sqlite),
      operationApprovals: createSqliteOperationApprovals(sqlite),
      sqlite,
      postgres: undefined,
      requestWrites: SQLITE_REQUEST_WRITES,
      check: async () => sqliteCheck(sqlite),
      close: async () => closeDatabase(sqlite),
    };
  }
  const postgres = connectPostgres(location.url, location.pool, {
    applicationName: 'gatehouse-authorization-server',
    onBackgroundError: (error) =>
      options.logger?.warn('a PostgreSQL connection broke', { error: error.message }),
  });
  try {
    const ran = await migrate(postgres, POSTGRES_MIGRATIONS);
    if (ran.length > 0) options.logger?.info('PostgreSQL store migrated', { migrations: ran });
  } catch (error) {
    closeDatabase(sqlite);
    await postgres.close().catch(() => {});
    throw error;
  }
  return {
    location,
    description,
    oidc: postgresOidcModelStore(postgres, { clockTolerance: DEFAULT_CLOCK_TOLERANCE_SECONDS }),
    audit: postgresAuditStore(postgres),
    accounts: postgresAccounts(postgres),
    oneTimeCodes: (settings) => postgresOneTimeCodes(postgres, settings),
    devInbox: postgresDevInbox(postgres),
    directory: postgresDirectory(postgres),
    operationApprovals: postgresOperationApprovals(postgres),
    sqlite,
    postgres,
    requestWrites: SQLITE_REQUEST_WRITES,
    async check() {
      const [shared, local] = [await postgres.check(), sqliteCheck(sqlite)];
      return shared.ok && local.ok ? { ok: true } : { ok: false, error: String(shared.error ?? local.error) };
    },
    async close() {
      closeDatabase(sqlite);
      await postgres.close();
    },
  };
}
