/**
 * The configuration the benchmark runs: the whole stack on free loopback ports with a temporary data
 * directory, every URL pointing at the real ports (the MCP server's canonical URI is the gateway's
 * `/mcp`), as test/helpers/stack.ts does (both from src/launcher/loopback-config.ts). Every process
 * of a chain builds the same configuration from the chain's ports and data directory
 * (bench/server-process.ts). Production defaults everywhere (log level `info`, cache
 * lifetimes, token lifetimes) except the per-address rate limits, which a benchmark sending
 * thousands of requests from 127.0.0.1 would hit by design:
 *
 * - `login.perEmail` / `login.perAddress`: 1,000 per minute (default 5 and 20 per 15 minutes);
 * - `dynamicRegistration.rateLimit`: 10,000 per hour (default 20);
 * - `tokenEndpointRateLimit`: 10,000,000 per minute for every limit (defaults 600 per address and
 *   per workload or agent client, 60,000 per internal service).
 *
 * One more client is registered for the token benchmark: `bench-secret-workload`, a workload with
 * client_secret_basic, next to the default clients (whose list the override would otherwise replace).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type LoopbackUrls,
  loopbackStackSections,
  loopbackUrls,
  type StackPorts,
} from '../src/launcher/loopback-config.ts';
import type { LoadedConfig } from '../src/shared/config/load.ts';
import { parseConfig } from '../src/shared/config/load.ts';
import { testEncryptionKey } from '../test/helpers/postgres.ts';
import { freePort } from '../test/helpers/stack.ts';
import { SECRET_WORKLOAD, WORKLOAD_SCOPE } from './workload-clients.ts';

export { freePort };

export type BenchPorts = StackPorts;
export type BenchUrls = LoopbackUrls;
export const urlsFor = loopbackUrls;

export async function freePorts(): Promise<BenchPorts> {
  return {
    authorizationServer: await freePort(),
    gateway: await freePort(),
    mcpServer: await freePort(),
    apis: await freePort(),
  };
}

/** A fresh temporary data directory; the caller removes it. */
export const makeDataDir = () => mkdtempSync(path.join(tmpdir(), 'gatehouse-bench-'));

/** How one bench server process differs from the others of its chain (bench/server-process.ts). */
export interface BenchStartOptions {
  /** The authorization server's token store (a start option, not configuration). */
  storage?: 'sqlite' | 'memory';
  /** A PostgreSQL database for the authorization server's store (`storage.url`), with `storage: 'sqlite'`. */
  storageUrl?: string;
  /**
   * The port this authorization server process listens on when it is not the issuer's: a second
   * process of the same issuer on the same store, as two instances behind one load balancer are
   * (every URL it publishes and every assertion audience it accepts stay the issuer's).
   */
  listenPort?: number;
  /**
   * The same for a gateway: a second gateway process of the same public URL, as two gateway
   * instances behind one load balancer are.
   */
  gatewayListenPort?: number;
}

export function benchConfig(
  ports: BenchPorts,
  dataDir: string,
  options: BenchStartOptions = {},
): LoadedConfig {
  const sections = loopbackStackSections(ports);
  if (options.listenPort !== undefined) {
    sections.authorizationServer.listen = { host: '127.0.0.1', port: options.listenPort };
  }
  if (options.gatewayListenPort !== undefined) {
    sections.gateway.listen = { host: '127.0.0.1', port: options.gatewayListenPort };
  }
  const defaultClients = parseConfig({}).authorizationServer.clients;
  const config = parseConfig({
    dataDir,
    logLevel: 'info',
    ...(options.storageUrl
      ? { storage: { url: options.storageUrl, encryptionKey: testEncryptionKey() } }
      : {}),
    ...sections,
    authorizationServer: {
      ...sections.authorizationServer,
      login: { perEmail: { max: 1000, windowSeconds: 60 }, perAddress: { max: 1000, windowSeconds: 60 } },
      dynamicRegistration: { rateLimit: { max: 10_000, windowSeconds: 3600 } },
      tokenEndpointRateLimit: {
        perAddress: { max: 10_000_000, windowSeconds: 60 },
        perClient: {
          service: { max: 10_000_000, windowSeconds: 60 },
          workload: { max: 10_000_000, windowSeconds: 60 },
          agent: { max: 10_000_000, windowSeconds: 60 },
        },
      },
      clients: [
        ...defaultClients,
        {
          clientId: SECRET_WORKLOAD.clientId,
          name: 'Benchmark workload (client_secret_basic)',
          role: 'workload',
          authMethod: 'client_secret_basic',
          secret: SECRET_WORKLOAD.secret,
          scopes: [WORKLOAD_SCOPE],
        },
      ],
    },
  });
  return { config, dataDir, file: undefined };
}
