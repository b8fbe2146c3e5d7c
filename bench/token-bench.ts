/**
 * Part 3: client credentials tokens, `private_key_jwt` and `client_secret_basic`, from the
 * authorization servers below running side by side, one process each:
 *
 * - `sqlite`: Gatehouse's, with its SQLite store (the default deployment);
 * - `postgres`: Gatehouse's on PostgreSQL (`storage.url`, a database of the bench's own; left out,
 *   saying so, when no PostgreSQL server answers): what the shared store costs one instance;
 * - `memory`: Gatehouse's, with oidc-provider's in-memory adapter (what the store costs);
 * - `bare`: a bare oidc-provider with its in-memory adapter (bench/baseline/authorization-server.ts):
 *   what Gatehouse adds to the library.
 *
 * The combinations are measured in interleaved rounds (bench/rounds.ts). Per combination:
 * tokens/s, the server's CPU per token (all its threads: ES256 verification runs partly on the libuv
 * pool) and tokens per CPU-second. The headlines: Gatehouse SQLite ÷ bare tokens/s for
 * `private_key_jwt` (median over rounds), and Gatehouse SQLite's `private_key_jwt` tokens per
 * CPU-second.
 */
import { rmSync } from 'node:fs';
import type http from 'node:http';
import { type ServerChild, stopAll } from './child.ts';
import {
  type ClientAuthentication,
  runTokenLoad,
  type TokenLoadResult,
  type TokenRequests,
  tokenRequestFactory,
} from './client-credentials.ts';
import { type BenchPorts, freePorts, makeDataDir, urlsFor } from './config.ts';
import { type HopOptions, startBaselineHop, startGatehouseHop } from './hops.ts';
import { createKeepAliveAgent } from './http-client.ts';
import { type Measured, measured } from './measure.ts';
import { noteWindow } from './profile-windows.ts';
import { checkErrors, progress } from './progress.ts';
import { medianOver, type Round, type RoundPlan, runRounds, usableRounds } from './rounds.ts';
import { median, round, summarize } from './stats.ts';
import { KEY_WORKLOAD } from './workload-clients.ts';

export const TOKEN_SERVERS = ['sqlite', 'postgres', 'memory', 'bare'] as const;
export type TokenServerName = (typeof TOKEN_SERVERS)[number];
export const CLIENT_AUTHS: ClientAuthentication[] = ['private_key_jwt', 'client_secret_basic'];

export interface TokenServer {
  name: TokenServerName;
  process: ServerChild;
  issuer: string;
  ports: BenchPorts;
  dataDir: string;
  privateKeyFile: string | undefined;
  /** The PostgreSQL database of the `postgres` server. */
  storageUrl: string | undefined;
}

export interface TokenPlan {
  concurrency: number;
  warmupMs: number;
  windowMs: number;
  maxRequests: number;
  rounds: RoundPlan;
}

const keyFileOf = (child: ServerChild) =>
  (child.info.privateKeyFiles as Record<string, string> | undefined)?.[KEY_WORKLOAD];

async function startTokenServer(
  name: TokenServerName,
  options: HopOptions,
  postgresUrl: string | undefined,
): Promise<TokenServer> {
  const ports = await freePorts();
  const dataDir = makeDataDir();
  const hop = `tokens/${name}`;
  try {
    const child =
      name === 'bare'
        ? await startBaselineHop(hop, 'authorization-server', ports.authorizationServer, dataDir, options)
        : await startGatehouseHop(hop, 'authorization-server', { ports, dataDir }, options, {
            storage: name === 'memory' ? 'memory' : 'sqlite',
            ...(name === 'postgres' ? { storageUrl: postgresUrl } : {}),
          });
    return {
      name,
      process: child,
      issuer: urlsFor(ports).issuer,
      ports,
      dataDir,
      privateKeyFile: keyFileOf(child),
      storageUrl: name === 'postgres' ? postgresUrl : undefined,
    };
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}

/** Every server of TOKEN_SERVERS; `postgres` only with a database to run on. */
export type TokenServers = Partial<Record<TokenServerName, TokenServer>> &
  Record<Exclude<TokenServerName, 'postgres'>, TokenServer>;

export async function startTokenServers(
  options: HopOptions,
  postgresUrl: string | undefined,
): Promise<TokenServers> {
  const names = TOKEN_SERVERS.filter((name) => name !== 'postgres' || postgresUrl !== undefined);
  const results = await Promise.allSettled(names.map((name) => startTokenServer(name, options, postgresUrl)));
  const servers = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) {
    await stopTokenServers(servers);
    throw failed.reason;
  }
  return Object.fromEntries(servers.map((server) => [server.name, server])) as TokenServers;
}

export async function stopTokenServers(servers: readonly TokenServer[]): Promise<void> {
  await stopAll(servers.map((server) => server.process));
  for (const server of servers) rmSync(server.dataDir, { recursive: true, force: true });
}

/** Requests a window of `ms` is expected to need at `perSecond`, with a margin. */
export const expectedRequests = (perSecond: number, ms: number) =>
  Math.ceil((perSecond * ms * 1.3) / 1000) + 200;

type Combination = `${TokenServerName} ${ClientAuthentication}`;

/** One server and client authentication, with what its load needs between windows. */
interface CombinationLoad {
  name: Combination;
  server: TokenServer;
  auth: ClientAuthentication;
  requests: TokenRequests;
  agent: http.Agent;
  endpoint: URL;
  /** The highest tokens/s seen: how many assertions the next window needs signed ahead. */
  rate: number;
}

interface Slice {
  tokens: number;
  elapsedMs: number;
  cpu: number;
  clientCpu: number;
  otherCores: number;
  disturbed: boolean;
  latencies: number[];
}

const tokensPerSecond = (slice: Slice) => slice.tokens / (slice.elapsedMs / 1000);
const cpuPerToken = (slice: Slice) => slice.cpu / slice.tokens;

export async function benchTokens(
  servers: TokenServers,
  plan: TokenPlan,
  targets: { ratioVsBare: number; tokensPerCpuSecond: number },
) {
  const combinations: CombinationLoad[] = [];
  for (const name of TOKEN_SERVERS) {
    const server = servers[name];
    if (!server) continue;
    for (const auth of CLIENT_AUTHS) {
      combinations.push({
        name: `${name} ${auth}`,
        server,
        auth,
        requests: await tokenRequestFactory(server.issuer, auth, server.privateKeyFile),
        agent: createKeepAliveAgent(plan.concurrency),
        endpoint: new URL(`${server.issuer}/token`),
        // A first guess; then the highest rate seen.
        rate: 3000,
      });
    }
  }
  const byName = new Map(combinations.map((combination) => [combination.name, combination]));
  // Assertions are signed before a window is measured (outside it): the load generator's work.
  const prepare = (name: Combination, ms: number) => {
    const entry = byName.get(name)!;
    return entry.requests.prepare(expectedRequests(entry.rate, ms));
  };
  const load = async (name: Combination, ms: number) => {
    const entry = byName.get(name)!;
    const result = await runTokenLoad({
      endpoints: [entry.endpoint],
      agent: entry.agent,
      next: entry.requests.next,
      concurrency: plan.concurrency,
      durationMs: ms,
      maxRequests: plan.maxRequests,
    });
    // The highest rate seen: a window that runs out of assertions signs the rest while measured.
    entry.rate = Math.max(entry.rate, result.tokens / (result.elapsedMs / 1000));
    return result;
  };

  try {
    progress(`tokens: warming up ${combinations.length} combinations (${plan.warmupMs} ms each)`);
    for (const { name } of combinations) {
      await prepare(name, plan.warmupMs);
      checkErrors(`tokens ${name} warm-up`, await load(name, plan.warmupMs));
    }

    const measureSlice = async (name: Combination): Promise<Slice> => {
      const { server, auth } = byName.get(name)!;
      await prepare(name, plan.windowMs);
      const window: Measured<TokenLoadResult> = await measured([server.process], () =>
        load(name, plan.windowMs),
      );
      checkErrors(`tokens ${name}`, window.result);
      noteWindow(`tokens ${auth}`, [server.process.name], window, window.result.tokens);
      return {
        tokens: window.result.tokens,
        elapsedMs: window.result.elapsedMs,
        // On PostgreSQL the store's work runs in the database server: part of what a token costs,
        // as SQLite's is inside the server process.
        cpu: window.cpu + (server.name === 'postgres' ? window.databaseCpu : 0),
        clientCpu: window.clientCpu,
        otherCores: window.otherCores,
        disturbed: window.disturbed,
        latencies: window.result.latencies,
      };
    };
    const names = combinations.map((c) => c.name);
    const rounds = await runRounds(names, plan.rounds, measureSlice, (r) => {
      const rates = r.order.map((name) => `${name} ${Math.round(tokensPerSecond(r.windows[name]))}/s`);
      progress(
        `tokens: round ${r.index + 1}: ${rates.join(', ')}` +
          (r.disturbed ? ' (disturbed by other load on the machine)' : ''),
      );
    });
    return summarizeTokens(rounds, combinations, plan, targets);
  } finally {
    for (const combination of combinations) combination.agent.destroy();
  }
}

function summarizeTokens(
  rounds: Array<Round<Combination, Slice>>,
  combinations: readonly CombinationLoad[],
  plan: TokenPlan,
  targets: { ratioVsBare: number; tokensPerCpuSecond: number },
) {
  const { used, reliable, disturbed } = usableRounds(rounds, plan.rounds.minUndisturbed);
  const rows = combinations.map(({ name, server, auth }) => {
    const slices = used.map((r) => r.windows[name]);
    const tokens = slices.reduce((total, slice) => total + slice.tokens, 0);
    const seconds = slices.reduce((total, slice) => total + slice.elapsedMs, 0) / 1000;
    const cpu = slices.reduce((total, slice) => total + slice.cpu, 0);
    const clientCpu = slices.reduce((total, slice) => total + slice.clientCpu, 0);
    const latency = summarize(slices.flatMap((slice) => slice.latencies));
    return {
      server: server.name,
      client_auth: auth,
      tokens,
      tokens_per_second: round(tokens / seconds),
      server_cpu_cores: round(cpu / seconds),
      server_cpu_us_per_token: round((cpu * 1e6) / tokens),
      tokens_per_cpu_second: round(tokens / cpu),
      /** The load generator's cores: near 1, it (not the server) may be what limits tokens/s. */
      client_cpu_cores: round(clientCpu / seconds),
      p50_ms: round(latency.p50),
      p99_ms: round(latency.p99),
      other_load_cores: round(median(slices.map((slice) => slice.otherCores))),
    };
  });
  const vsBare = (server: TokenServerName, auth: ClientAuthentication) => ({
    tokens_per_second: round(
      medianOver(
        used,
        (r) => tokensPerSecond(r.windows[`${server} ${auth}`]) / tokensPerSecond(r.windows[`bare ${auth}`]),
      ),
    ),
    by_cpu: round(
      medianOver(
        used,
        (r) => cpuPerToken(r.windows[`bare ${auth}`]) / cpuPerToken(r.windows[`${server} ${auth}`]),
      ),
    ),
  });
  const ratios = Object.fromEntries(
    (['sqlite', 'postgres', 'memory'] as const)
      .filter((server) => combinations.some((combination) => combination.server.name === server))
      .flatMap((server) => CLIENT_AUTHS.map((auth) => [`${server}_vs_bare_${auth}`, vsBare(server, auth)])),
  );
  const hasPostgres = combinations.some((combination) => combination.server.name === 'postgres');
  /** One instance on PostgreSQL ÷ on SQLite, private_key_jwt, from the same interleaved rounds. */
  const postgresVsSqlite = hasPostgres
    ? round(
        medianOver(
          used,
          (r) =>
            tokensPerSecond(r.windows['postgres private_key_jwt']) /
            tokensPerSecond(r.windows['sqlite private_key_jwt']),
        ),
      )
    : undefined;
  const headline = medianOver(
    used,
    (r) =>
      tokensPerSecond(r.windows['sqlite private_key_jwt']) /
      tokensPerSecond(r.windows['bare private_key_jwt']),
  );
  const judged = rows.find((row) => row.server === 'sqlite' && row.client_auth === 'private_key_jwt')!;
  return {
    concurrency: plan.concurrency,
    window_ms: plan.windowMs,
    rounds: rounds.length,
    rounds_used: used.length,
    rounds_disturbed: disturbed,
    reliable,
    rate_limit_note: 'authorizationServer.tokenEndpointRateLimit raised to 10,000,000/min for the bench',
    rows,
    /** Median over the rounds of Gatehouse SQLite ÷ bare oidc-provider tokens/s (and by CPU per token). */
    ratios,
    ratio_sqlite_vs_bare_private_key_jwt: round(headline),
    ratio_postgres_vs_sqlite_private_key_jwt: postgresVsSqlite,
    target_ratio_vs_bare: targets.ratioVsBare,
    ratio_met: headline >= targets.ratioVsBare,
    tokens_per_cpu_second: judged.tokens_per_cpu_second,
    target_tokens_per_cpu_second: targets.tokensPerCpuSecond,
    cpu_met: judged.tokens_per_cpu_second >= targets.tokensPerCpuSecond,
  };
}
