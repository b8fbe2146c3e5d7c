/**
 * What administrators change at run time, behind one interface: the people and domains allowed to
 * sign in, the CIMD trusted domains, disabled clients, the clients seen, and the approval queue.
 *
 * The configuration file seeds it (seed.ts); after that it is the truth, and admin changes survive
 * restarts. A second store (PostgreSQL) is a new implementation of `Directory`, not edits elsewhere.
 */
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

export interface Directory {
  users: {
    list(search?: string): DirectoryUser[];
    get(email: string): DirectoryUser | undefined;
    /** Inserts or replaces an entry (email already normalized). */
    put(user: Omit<DirectoryUser, 'createdAt' | 'updatedAt'>): DirectoryUser;
    remove(email: string): boolean;
  };
  domains: {
    list(): DirectoryDomain[];
    get(domain: string): DirectoryDomain | undefined;
    put(domain: Omit<DirectoryDomain, 'createdAt'>): DirectoryDomain;
    remove(domain: string): boolean;
  };
  trustedDomains: {
    list(): TrustedDomain[];
    add(domain: string, source: EntrySource): TrustedDomain;
    remove(domain: string): boolean;
  };
  clients: {
    disabledSince(clientId: string): number | undefined;
    setDisabled(clientId: string, disabled: boolean): void;
    listDisabled(): Map<string, number>;
    recordSeen(clientId: string, name: string | undefined): void;
    listSeen(): SeenClient[];
    forget(clientId: string): void;
    /** Forgets only that it was seen (a deleted metadata document keeps its state and decision). */
    forgetSeen(clientId: string): void;
  };
  registeredClients: {
    get(clientId: string): RegisteredClient | undefined;
    list(): RegisteredClient[];
    add(client: Omit<RegisteredClient, 'createdAt'>): RegisteredClient;
    remove(clientId: string): boolean;
  };
  approvals: {
    get(clientId: string): ClientApproval | undefined;
    list(status?: ApprovalStatus): ClientApproval[];
    /** Queues a client (or refreshes who tried it last); a decided one keeps its decision. */
    request(approval: Omit<ClientApproval, 'status' | 'decidedBy' | 'decidedAt'>): ClientApproval;
    decide(clientId: string, status: 'approved' | 'denied', by: string): ClientApproval | undefined;
  };
  /**
   * Entries of the configuration file an administrator removed: a restart must not bring them back
   * (seed.ts imports only what was never seen).
   */
  seeds: {
    wasRemoved(kind: SeedKind, key: string): boolean;
    markRemoved(kind: SeedKind, key: string): void;
    clearRemoved(kind: SeedKind, key: string): void;
  };
}

export type SeedKind = 'user' | 'domain' | 'trusted-domain';
