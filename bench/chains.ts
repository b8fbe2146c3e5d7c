/**
 * The three tool-call chains the benchmark compares, each with one process per hop:
 *
 * - `secured`: Gatehouse as deployed, authorization server, APIs, MCP server and gateway, each its
 *   own `gatehouse serve <component>` process (bench/server-process.ts) on one data directory;
 *   callers talk to the gateway's `/mcp`. A second gateway process (same public URL, its own
 *   port) stands beside the first, for the two-gateway setup of bench/tool-call-bench.ts.
 * - `baseline`: the independent baseline (bench/baseline/): a plain `node:http` proxy → the MCP SDK
 *   v2's stateless server with the same four tools → plain API handlers; no Gatehouse code at all.
 * - `unsecured`: the bench's own unsecured chain (bench/unsecured-chain.ts): Gatehouse's building
 *   blocks with every authorization step taken out, one process per hop as well.
 *
 * A chain's CPU is the sum over all of its processes, the authorization server included.
 */
import { rmSync } from 'node:fs';
import { type ServerChild, stopAll } from './child.ts';
import { type BenchUrls, freePort, freePorts, makeDataDir, urlsFor } from './config.ts';
import { type HopOptions, startBaselineHop, startGatehouseHop } from './hops.ts';

export const CHAIN_NAMES = ['secured', 'baseline', 'unsecured'] as const;
export type ChainName = (typeof CHAIN_NAMES)[number];

export interface Chain {
  name: ChainName;
  /** Where the callers send their tool calls. */
  mcpUrl: string;
  /** The secured chain's second gateway's `/mcp` (two gateway instances of one deployment). */
  secondMcpUrl?: string;
  hops: ServerChild[];
  /** The chain's ports as URLs (the secured chain's issuer, MCP server, ...). */
  urls: BenchUrls;
  dataDir: string;
  /** CPU seconds used so far by all of the chain's processes together. */
  cpuSeconds(): Promise<number>;
  stop(): Promise<void>;
}

async function assemble(
  name: ChainName,
  mcpUrl: (urls: BenchUrls) => string,
  startHops: (
    chain: { ports: Awaited<ReturnType<typeof freePorts>>; dataDir: string },
    hops: ServerChild[],
  ) => Promise<void>,
): Promise<Chain> {
  const ports = await freePorts();
  const dataDir = makeDataDir();
  const urls = urlsFor(ports);
  const hops: ServerChild[] = [];
  const stop = async () => {
    await stopAll(hops);
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await startHops({ ports, dataDir }, hops);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    name,
    mcpUrl: mcpUrl(urls),
    hops,
    urls,
    dataDir,
    async cpuSeconds() {
      const each = await Promise.all(hops.map((hop) => hop.cpuSeconds()));
      return each.reduce((total, seconds) => total + seconds, 0);
    },
    stop,
  };
}

/**
 * In dependency order, as the launcher starts them: the authorization server first (it creates the
 * keys and the internal clients' secrets the others read), then the APIs, the MCP server and the
 * gateway (both follow the authorization server's revocation stream from their start).
 */
async function startSecured(options: HopOptions): Promise<Chain> {
  const secondGatewayPort = await freePort();
  const chain = await assemble(
    'secured',
    (urls) => urls.mcpUrl,
    async (chain, hops) => {
      for (const role of ['authorization-server', 'apis', 'mcp-server', 'gateway'] as const) {
        hops.push(await startGatehouseHop(`secured/${role}`, role, chain, options));
      }
      hops.push(
        await startGatehouseHop('secured/gateway-2', 'gateway', chain, options, {
          gatewayListenPort: secondGatewayPort,
        }),
      );
    },
  );
  return { ...chain, secondMcpUrl: `http://127.0.0.1:${secondGatewayPort}/mcp` };
}

function startUnsecured(options: HopOptions): Promise<Chain> {
  return assemble(
    'unsecured',
    (urls) => urls.mcpUrl,
    async (chain, hops) => {
      for (const role of ['apis', 'mcp-server', 'gateway'] as const) {
        hops.push(await startGatehouseHop(`unsecured/${role}`, `unsecured-${role}`, chain, options));
      }
    },
  );
}

function startBaseline(options: HopOptions): Promise<Chain> {
  return assemble(
    'baseline',
    // The proxy listens on the gateway's port: the same URL as the other chains.
    (urls) => urls.mcpUrl,
    async ({ ports }, hops) => {
      const urls = urlsFor(ports);
      hops.push(await startBaselineHop('baseline/apis', 'apis', ports.apis, undefined, options));
      hops.push(
        await startBaselineHop('baseline/mcp-server', 'mcp-server', ports.mcpServer, urls.apisUrl, options),
      );
      hops.push(await startBaselineHop('baseline/proxy', 'proxy', ports.gateway, urls.mcpServerUrl, options));
    },
  );
}

const STARTERS: Record<ChainName, (options: HopOptions) => Promise<Chain>> = {
  secured: startSecured,
  baseline: startBaseline,
  unsecured: startUnsecured,
};

/** Starts the three chains side by side; if one fails, stops the others. */
export async function startChains(options: HopOptions): Promise<Record<ChainName, Chain>> {
  const results = await Promise.allSettled(CHAIN_NAMES.map((name) => STARTERS[name](options)));
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) {
    await Promise.all(
      results.map((result) => (result.status === 'fulfilled' ? result.value.stop() : undefined)),
    );
    throw failed.reason;
  }
  const chains = results.map((result) => (result as PromiseFulfilledResult<Chain>).value);
  return Object.fromEntries(chains.map((chain) => [chain.name, chain])) as Record<ChainName, Chain>;
}
