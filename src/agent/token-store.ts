/**
 * The agent's credentials on disk: dynamic registrations, DPoP keys and tokens, per authorization
 * server issuer (RFC 6749 §2.2: a client_id means something only to the server that issued it).
 *
 * One JSON file, readable only by the user: the file is written 0600 through a temporary file and a
 * rename (never half-written), and a directory the store creates is 0700. A file found readable by
 * others is narrowed back to 0600 when it is next read.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { AgentError } from './errors.ts';

/** A client this agent registered dynamically (RFC 7591), with its management credentials (RFC 7592). */
export interface StoredRegistration {
  client_id: string;
  client_secret?: string;
  client_secret_expires_at?: number;
  token_endpoint_auth_method?: string;
  redirect_uris?: string[];
  registration_client_uri?: string;
  registration_access_token?: string;
  /** Seconds since the epoch. */
  registered_at: number;
}

export interface StoredTokens {
  access_token: string;
  token_type: string;
  refresh_token?: string;
  /** The scope granted, space-separated; absent when the server did not say. */
  scope?: string;
  /** Seconds since the epoch; absent when the server did not say. */
  expires_at?: number;
}

/**
 * The key this agent proves possession of for one client at one authorization server (RFC 9449):
 * its tokens (and, for a public client, its refresh tokens, §5) are bound to it, so it outlives
 * the process and goes only with the registration.
 */
export interface StoredDpopKey {
  /** The JWS algorithm of the proofs (`ES256` unless the servers rule it out). */
  alg: string;
  /** The private JWK (RFC 7517), `d` included: this file is the only place it exists. */
  private_jwk: Record<string, unknown>;
  /** Seconds since the epoch. */
  created_at: number;
}

interface IssuerEntry {
  registration?: StoredRegistration;
  /** Keyed by `${client_id} ${resource}`. */
  tokens: Record<string, StoredTokens>;
  /** Keyed by client_id: one DPoP key per client at this issuer. */
  dpop_keys?: Record<string, StoredDpopKey>;
}

interface StoreFile {
  version: 1;
  authorizationServers: Record<string, IssuerEntry>;
}

/** Where the agent keeps its files: $GATEHOUSE_AGENT_HOME, else $XDG_CONFIG_HOME/gatehouse, else ~/.config/gatehouse. */
export function agentHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GATEHOUSE_AGENT_HOME) return env.GATEHOUSE_AGENT_HOME;
  if (env.XDG_CONFIG_HOME) return path.join(env.XDG_CONFIG_HOME, 'gatehouse');
  if (process.platform === 'win32' && env.APPDATA) return path.join(env.APPDATA, 'gatehouse');
  return path.join(homedir(), '.config', 'gatehouse');
}

export const defaultStorePath = (env: NodeJS.ProcessEnv = process.env) =>
  path.join(agentHome(env), 'agent-credentials.json');

const tokenKey = (clientId: string, resource: string) => `${clientId} ${resource}`;

export interface TokenStore {
  readonly path: string;
  registration(issuer: string): StoredRegistration | undefined;
  saveRegistration(issuer: string, registration: StoredRegistration): void;
  /** Forgets a registration the server no longer knows, and every token and DPoP key of it. */
  forgetRegistration(issuer: string, clientId: string): void;
  dpopKey(issuer: string, clientId: string): StoredDpopKey | undefined;
  saveDpopKey(issuer: string, clientId: string, key: StoredDpopKey): void;
  tokens(issuer: string, clientId: string, resource: string): StoredTokens | undefined;
  saveTokens(issuer: string, clientId: string, resource: string, tokens: StoredTokens): void;
  forgetTokens(issuer: string, clientId: string, resource: string): void;
}

/** Opens (lazily: nothing is created until the first save) the store at `file`. */
export function openTokenStore(file: string, warn: (message: string) => void = () => {}): TokenStore {
  const read = (): StoreFile => {
    if (!existsSync(file)) return { version: 1, authorizationServers: {} };
    const mode = statSync(file).mode & 0o777;
    if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
      warn(`${file} was readable by others (mode ${mode.toString(8)}); narrowing it to 0600`);
      chmodSync(file, 0o600);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      throw new AgentError(
        'usage',
        `the credentials file ${file} is not valid JSON`,
        'Delete it (you will sign in and register again), or pass another file with --store.',
      );
    }
    const store = parsed as Partial<StoreFile>;
    if (
      store.version !== 1 ||
      typeof store.authorizationServers !== 'object' ||
      !store.authorizationServers
    ) {
      throw new AgentError(
        'usage',
        `the credentials file ${file} has an unknown format`,
        'Delete it (you will sign in and register again), or pass another file with --store.',
      );
    }
    return store as StoreFile;
  };

  const write = (store: StoreFile) => {
    const dir = path.dirname(file);
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(temporary, `${JSON.stringify(store, null, 2)}\n`, { mode: 0o600 });
    chmodSync(temporary, 0o600);
    renameSync(temporary, file);
  };

  /** Read, change, write: another agent process may have written in between. */
  const update = (issuer: string, change: (entry: IssuerEntry) => void) => {
    const store = read();
    const entry = store.authorizationServers[issuer] ?? { tokens: {} };
    change(entry);
    store.authorizationServers[issuer] = entry;
    write(store);
  };

  return {
    path: file,
    registration: (issuer) => read().authorizationServers[issuer]?.registration,
    saveRegistration: (issuer, registration) =>
      update(issuer, (entry) => {
        entry.registration = registration;
      }),
    forgetRegistration: (issuer, clientId) =>
      update(issuer, (entry) => {
        if (entry.registration?.client_id === clientId) delete entry.registration;
        for (const key of Object.keys(entry.tokens)) {
          if (key.startsWith(`${clientId} `)) delete entry.tokens[key];
        }
        if (entry.dpop_keys) delete entry.dpop_keys[clientId];
      }),
    dpopKey: (issuer, clientId) => read().authorizationServers[issuer]?.dpop_keys?.[clientId],
    saveDpopKey: (issuer, clientId, key) =>
      update(issuer, (entry) => {
        entry.dpop_keys = { ...entry.dpop_keys, [clientId]: key };
      }),
    tokens: (issuer, clientId, resource) =>
      read().authorizationServers[issuer]?.tokens[tokenKey(clientId, resource)],
    saveTokens: (issuer, clientId, resource, tokens) =>
      update(issuer, (entry) => {
        entry.tokens[tokenKey(clientId, resource)] = tokens;
      }),
    forgetTokens: (issuer, clientId, resource) =>
      update(issuer, (entry) => {
        delete entry.tokens[tokenKey(clientId, resource)];
      }),
  };
}
