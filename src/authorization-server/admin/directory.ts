/**
 * What administrators change at run time, behind one interface: the people and domains allowed to
 * sign in, the CIMD trusted domains, disabled clients, the clients seen, and the approval queue.
 *
 * The configuration file seeds it (seed.ts); after that it is the truth, and admin changes survive
 * restarts. Two implementations: sqlite-directory.ts (one instance) and postgres-directory.ts (every
 * instance on one database). Every call is asked of the store, never of a copy another instance
 * could have made stale: a client disabled at one instance is refused at the next request anywhere.
 */
import type { ToolRule } from '../../shared/config/schema.ts';
import type { ClaimValue } from '../login/approved-users.ts';

export type UserStatus = 'active' | 'suspended';
/** Where an entry came from: the configuration file (first import) or an administrator. */
export type EntrySource = 'configuration' | 'administrator';

export interface DirectoryUser {
  email: string;
  name?: string;
  claims: Record<string, ClaimValue>;
  status: UserStatus;
  source: EntrySource;
  createdAt: number;
  updatedAt: number;
}

export interface DirectoryDomain {
  domain: string;
  claims: Record<string, ClaimValue>;
  source: EntrySource;
  createdAt: number;
}

export interface TrustedDomain {
  domain: string;
  source: EntrySource;
  createdAt: number;
}

/** The client classes an approval policy speaks of (clients/client-classification.ts). */
export type ApprovalClass = 'cimdTrusted' | 'cimdOther' | 'dynamic';
export type ApprovalStatus = 'pending' | 'approved' | 'denied';

export interface ClientApproval {
  clientId: string;
  clientClass: ApprovalClass;
  name: string;
  redirectUris: string[];
  scopes: string[];
  /** The metadata the client presented (its CIMD document or its DCR registration), as stored. */
  metadata: Record<string, unknown>;
  status: ApprovalStatus;
  /** The email of the user whose sign-in put it in the queue, and when. */
  requestedBy: string;
  requestedAt: number;
  decidedBy?: string;
  decidedAt?: number;
}

/** A client an administrator registered (the console or the admin API), as oidc-provider metadata. */
export interface RegisteredClient {
  clientId: string;
  role: 'agent' | 'workload';
  /** oidc-provider client metadata, secret included (the store holds it as it holds DCR secrets). */
  metadata: Record<string, unknown>;
  createdAt: number;
  createdBy: string;
}

/** A client this server has seen use a grant or sign in (CIMD clients have no row elsewhere). */
export interface SeenClient {
  clientId: string;
  name?: string;
  firstSeenAt: number;
  lastUsedAt: number;
}

/**
 * An administrator's rule for a tool (admin console), in place of the configuration's
 * `mcpServer.tools[].allow`: a rule on the user's claims, or null for "every user".
 */
export interface ToolRuleOverride {
  tool: string;
  rule: ToolRule | null;
  updatedBy: string;
  updatedAt: number;
}

export interface Directory {
  users: {
    list(search?: string): Promise<DirectoryUser[]>;
    get(email: string): Promise<DirectoryUser | undefined>;
    /** Inserts or replaces an entry (email already normalized). */
    put(user: Omit<DirectoryUser, 'createdAt' | 'updatedAt'>): Promise<DirectoryUser>;
    remove(email: string): Promise<boolean>;
  };
  domains: {
    list(): Promise<DirectoryDomain[]>;
    get(domain: string): Promise<DirectoryDomain | undefined>;
    put(domain: Omit<DirectoryDomain, 'createdAt'>): Promise<DirectoryDomain>;
    remove(domain: string): Promise<boolean>;
  };
  trustedDomains: {
    list(): Promise<TrustedDomain[]>;
    /** Adds a domain; one already there keeps its source and time. */
    add(domain: string, source: EntrySource): Promise<TrustedDomain>;
    remove(domain: string): Promise<boolean>;
  };
  clients: {
    disabledSince(clientId: string): Promise<number | undefined>;
    setDisabled(clientId: string, disabled: boolean): Promise<void>;
    listDisabled(): Promise<Map<string, number>>;
    recordSeen(clientId: string, name: string | undefined): Promise<void>;
    listSeen(): Promise<SeenClient[]>;
    forget(clientId: string): Promise<void>;
    /** Forgets only that it was seen (a deleted metadata document keeps its state and decision). */
    forgetSeen(clientId: string): Promise<void>;
  };
  registeredClients: {
    get(clientId: string): Promise<RegisteredClient | undefined>;
    list(): Promise<RegisteredClient[]>;
    add(client: Omit<RegisteredClient, 'createdAt'>): Promise<RegisteredClient>;
    remove(clientId: string): Promise<boolean>;
  };
  approvals: {
    get(clientId: string): Promise<ClientApproval | undefined>;
    list(status?: ApprovalStatus): Promise<ClientApproval[]>;
    /** Queues a client (or refreshes who tried it last); a decided one keeps its decision. */
    request(approval: Omit<ClientApproval, 'status' | 'decidedBy' | 'decidedAt'>): Promise<ClientApproval>;
    decide(clientId: string, status: 'approved' | 'denied', by: string): Promise<ClientApproval | undefined>;
  };
  /** Who may use which tool, where an administrator overrode the configuration (tools/tool-policy.ts). */
  toolRules: {
    list(): Promise<ToolRuleOverride[]>;
    put(entry: Omit<ToolRuleOverride, 'updatedAt'>): Promise<ToolRuleOverride>;
    /** Back to the configuration's rule. */
    remove(tool: string): Promise<boolean>;
  };
  /**
   * Entries of the configuration file an administrator removed: a restart must not bring them back
   * (seed.ts imports only what was never seen).
   */
  seeds: {
    wasRemoved(kind: SeedKind, key: string): Promise<boolean>;
    markRemoved(kind: SeedKind, key: string): Promise<void>;
    clearRemoved(kind: SeedKind, key: string): Promise<void>;
  };
  /**
   * Runs fn with a directory whose calls make one unit: all of them or none, and, with PostgreSQL,
   * one instance at a time (an advisory lock), so instances starting together on one database
   * seed one after the other (seed.ts) and the second finds the first's entries.
   */
  exclusively<T>(fn: (directory: Directory) => Promise<T>): Promise<T>;
}

export type SeedKind = 'user' | 'domain' | 'trusted-domain';
