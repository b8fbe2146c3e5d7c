/**
 * Part 4: client credentials tokens (`private_key_jwt`) with one and with two authorization server
 * processes on one store, the load split across them. Both processes serve the same issuer from
 * the same data directory, each on its own port, as two instances behind one load balancer would.
 *
 * On PostgreSQL (the store for several instances) the 2 ÷ 1 ratio is the scaling the deployment
 * gets. On SQLite, one writer at a time, and node:sqlite waits for the lock synchronously, so the
 * second process may add little or even cost throughput: reported, no target. Failed requests
 * (e.g. SQLITE_BUSY past the busy timeout) are counted here and do not fail the run.
 *
 * On this 2-core machine the load generator shares the cores with the servers: two server
 * processes cannot get two cores of their own, so the ratio is bounded well below 2. The bound is
 * reported beside it (`ceiling`): the machine's cores ÷ the cores the 1-process setup already keeps
 * busy (its server process, the idle second one, the database server and the load generator), the
 * most a second process could add if a token cost no more CPU with two than with one.
 */
import os from 'node:os';
import { type ServerChild, stopAll } from './child.ts';
import { runTokenLoad, tokenRequestFactory } from './client-credentials.ts';
import { freePort } from './config.ts';
import { type HopOptions, startGatehouseHop } from './hops.ts';
import { createKeepAliveAgent } from './http-client.ts';
import { measured } from './measure.ts';
import { noteWindow } from './profile-windows.ts';
import { progress } from './progress.ts';
import { medianOver, type RoundPlan, runRounds, usableRounds } from './rounds.ts';
import { round, summarize } from './stats.ts';
import { expectedRequests, type TokenServer } from './token-bench.ts';

export interface ScalingPlan {
  concurrency: number;
  warmupMs: number;
  windowMs: number;
  maxRequests: number;
  rounds: RoundPlan;
}

const SETUPS = ['1 process', '2 processes'] as const;
type Setup = (typeof SETUPS)[number];

interface Slice {
  tokens: number;
  errors: number;
  firstError: string | undefined;
  elapsedMs: number;
  cpu: number;
  /** Cores busy with this setup's work during the window: servers, database and load generator. */
  cores: number;
  disturbed: boolean;
  latencies: number[];
}

export async function benchTokenScaling(
  first: TokenServer,
  plan: ScalingPlan,
  options: HopOptions,
  target: number | undefined,
) {
  const store = first.name === 'postgres' ? 'PostgreSQL' : 'SQLite';
  progress(`token scaling: starting a second authorization server process on the same ${store} store`);
  const listenPort = await freePort();
  const second: ServerChild = await startGatehouseHop(
    `tokens/${first.name}-second`,
    'authorization-server',
    { ports: first.ports, dataDir: first.dataDir },
    options,
    { storage: 'sqlite', listenPort, ...(first.storageUrl ? { storageUrl: first.storageUrl } : {}) },
  );
  const processes = [first.process, second];
  const endpoints: Record<Setup, URL[]> = {
    '1 process': [new URL(`${first.issuer}/token`)],
    '2 processes': [new URL(`${first.issuer}/token`), new URL(`http://127.0.0.1:${listenPort}/token`)],
  };
  // Both processes are the same issuer: the assertions' audience is the same for either.
  const requests = await tokenRequestFactory(first.issuer, 'private_key_jwt', first.privateKeyFile);
  const agent = createKeepAliveAgent(plan.concurrency);
  let rate = 3000;
  // Assertions are signed before a window is measured (outside it): the load generator's work.
  const prepare = (ms: number) => requests.prepare(expectedRequests(rate, ms));
  const load = async (setup: Setup, ms: number) => {
    const result = await runTokenLoad({
      endpoints: endpoints[setup],
      agent,
      next: requests.next,
      concurrency: plan.concurrency,
      durationMs: ms,
      maxRequests: plan.maxRequests,
    });
    rate = Math.max(rate, result.tokens / (result.elapsedMs / 1000));
    return result;
  };
  let failed = 0;
  let firstError: string | undefined;
  const note = (result: { errors: number; firstError: string | undefined }) => {
    failed += result.errors;
    firstError ??= result.firstError;
  };
  try {
    progress(`token scaling (${store}): warm-up (${plan.warmupMs} ms, both processes)`);
    await prepare(plan.warmupMs);
    note(await load('2 processes', plan.warmupMs));
    const rounds = await runRounds(
      SETUPS,
      plan.rounds,
      async (setup): Promise<Slice> => {
        // Both processes' CPU, in either setup: the idle one's is part of what a token costs there.
        await prepare(plan.windowMs);
        const window = await measured(processes, () => load(setup, plan.windowMs));
        note(window.result);
        noteWindow(
          `tokens scaling ${setup}`,
          processes.map((child) => child.name),
          window,
          window.result.tokens,
        );
        // On PostgreSQL the database server's CPU is part of the cost (see token-bench.ts).
        const cpu = window.cpu + (first.name === 'postgres' ? window.databaseCpu : 0);
        const cores = (cpu + window.clientCpu) / (window.result.elapsedMs / 1000);
        return { ...window.result, cpu, cores, disturbed: window.disturbed };
      },
      (r) =>
        progress(
          `token scaling (${store}): round ${r.index + 1}: ` +
            r.order.map((setup) => `${setup} ${Math.round(perSecond(r.windows[setup]))}/s`).join(', ') +
            (r.disturbed ? ' (disturbed by other load on the machine)' : ''),
        ),
    );
    const { used, reliable, disturbed } = usableRounds(rounds, plan.rounds.minUndisturbed);
    const row = (setup: Setup) => {
      const slices = used.map((r) => r.windows[setup]);
      const tokens = slices.reduce((total, slice) => total + slice.tokens, 0);
      const seconds = slices.reduce((total, slice) => total + slice.elapsedMs, 0) / 1000;
      const cpu = slices.reduce((total, slice) => total + slice.cpu, 0);
      const latency = summarize(slices.flatMap((slice) => slice.latencies));
      return {
        processes: endpoints[setup].length,
        tokens_per_second: round(tokens / seconds),
        server_cpu_us_per_token: round((cpu * 1e6) / tokens),
        p50_ms: round(latency.p50),
        p99_ms: round(latency.p99),
        failed_requests: slices.reduce((total, slice) => total + slice.errors, 0),
        /** Of the machine's cores, how many this setup kept busy (servers, database, load generator). */
        machine_cores_busy: round(medianOver(used, (r) => r.windows[setup].cores)),
      };
    };
    const cores = os.availableParallelism();
    const ceiling = round(medianOver(used, (r) => cores / r.windows['1 process'].cores));
    const speedup = round(
      medianOver(used, (r) => perSecond(r.windows['2 processes']) / perSecond(r.windows['1 process'])),
    );
    return {
      store,
      note:
        store === 'SQLite'
          ? 'SQLite has one writer at a time: a poor 2-process number is expected, no target'
          : 'the load generator shares the 2 cores with both server processes',
      client_auth: 'private_key_jwt',
      concurrency: plan.concurrency,
      window_ms: plan.windowMs,
      rounds: rounds.length,
      rounds_used: used.length,
      rounds_disturbed: disturbed,
      reliable,
      one_process: row('1 process'),
      two_processes: row('2 processes'),
      /** Median over the rounds of 2-process ÷ 1-process tokens/s. */
      speedup,
      /** The most `speedup` could be on this machine: its cores ÷ those the 1-process setup keeps busy. */
      ceiling,
      machine_cores: cores,
      target_speedup: target,
      met: target === undefined ? undefined : speedup >= target,
      failed_requests: failed,
      first_error: firstError,
    };
  } finally {
    agent.destroy();
    await stopAll([second]);
  }
}

const perSecond = (slice: { tokens: number; elapsedMs: number }) => slice.tokens / (slice.elapsedMs / 1000);
