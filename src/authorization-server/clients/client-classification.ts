/**
 * How much the authorization server knows about a client, as claims APIs can authorize on.
 *
 * `client_type` says what the caller is (`ai-agent`, `workload`, `service`), and
 * `client_assurance_level` how well it was identified: pre-registered (4) > CIMD from a trusted
 * domain (3) > other CIMD (2) > dynamic registration (1). A document's host proves who publishes
 * it; a dynamic registration proves nothing, hence the order.
 */
import type { PreRegisteredClientConfig } from '../../shared/config/schema.ts';

export type ClientKind = 'pre-registered' | 'cimd' | 'dynamic';
export type ClientType = 'ai-agent' | 'workload' | 'service';

export const ASSURANCE_LEVEL = { preRegistered: 4, trustedCimd: 3, cimd: 2, dynamic: 1 } as const;

export interface ClientClassification {
  kind: ClientKind;
  /** The consent page shows verified clients as such; only pre-registered and trusted CIMD are. */
  verified: boolean;
  clientType: ClientType;
  assuranceLevel: number;
}

export interface ClientClassifier {
  /** Asks the directory for what it may hold (administrators' clients, trusted domains): async. */
  classify(clientId: string): Promise<ClientClassification>;
  /** A client of the configuration file or one an administrator registered. */
  preRegistered(clientId: string): Promise<PreRegisteredClientConfig | undefined>;
  /**
   * A client of the configuration file only, at once: the one source of the internal roles
   * (`gateway`, `mcp-server`, `admin`), as an administrator registers agents and workloads only
   * (admin/admin-clients.ts). Checks of those roles need nothing else.
   */
  configured(clientId: string): PreRegisteredClientConfig | undefined;
}

const ROLE_TYPES: Record<PreRegisteredClientConfig['role'], ClientType> = {
  agent: 'ai-agent',
  workload: 'workload',
  gateway: 'service',
  'mcp-server': 'service',
  admin: 'service',
};

export function createClientClassifier(
  clients: PreRegisteredClientConfig[],
  isCimdClientId: (clientId: string) => boolean,
  isTrustedCimd: (clientId: string) => Promise<boolean>,
  /** Clients registered by an administrator at run time (admin/admin-clients.ts). */
  registeredAtRunTime: (clientId: string) => Promise<PreRegisteredClientConfig | undefined> = async () =>
    undefined,
): ClientClassifier {
  const byId = new Map(clients.map((client) => [client.clientId, client]));
  const configured = (clientId: string) => byId.get(clientId);
  const preRegistered = async (clientId: string) => configured(clientId) ?? registeredAtRunTime(clientId);
  return {
    configured,
    preRegistered,
    async classify(clientId) {
      // A metadata document's URL is never an administrator's client id (those have no ':' or '/'):
      // one lookup in the directory per classification, not two.
      const known = isCimdClientId(clientId) ? configured(clientId) : await preRegistered(clientId);
      if (known) {
        return {
          kind: 'pre-registered',
          verified: true,
          clientType: ROLE_TYPES[known.role],
          assuranceLevel: ASSURANCE_LEVEL.preRegistered,
        };
      }
      if (isCimdClientId(clientId)) {
        const trusted = await isTrustedCimd(clientId);
        return {
          kind: 'cimd',
          verified: trusted,
          clientType: 'ai-agent',
          assuranceLevel: trusted ? ASSURANCE_LEVEL.trustedCimd : ASSURANCE_LEVEL.cimd,
        };
      }
      return {
        kind: 'dynamic',
        verified: false,
        clientType: 'ai-agent',
        assuranceLevel: ASSURANCE_LEVEL.dynamic,
      };
    },
  };
}
