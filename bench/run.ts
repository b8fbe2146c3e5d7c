/**
 * `npm run bench` (node bench/run.ts [--quick] [--profile]): Gatehouse's benchmark.
 *
 * 1. Tool calls per second and latency for a read tool through gateway → MCP server → API with warm
 *    caches, against the same chain with authorization taken out (bench/unsecured-chain.ts), and
 *    their ratio (target ≥ 0.85).
 * 2. Cold onboarding of a new agent, headless, from the first 401 to the first tool result
 *    (bench/onboarding.ts; target p50 < 150 ms).
 * 3. Client credentials tokens per second from the token endpoint, SQLite store against the
 *    in-memory store (bench/client-credentials.ts; target ≥ 1,000 tokens/s per core).
 *
 * Servers run in child processes (bench/server-process.ts), the load generator here, so the two do
 * not share a core. Every measured window also records how busy the rest of the machine was (CPU
 * time of all processes minus ours): tool-call windows disturbed by other work are set aside when
 * enough undisturbed ones remain. Progress goes to stderr; a table and one JSON line with every
 * number to stdout. Exits 0 whether targets are met or not (a missed one is marked MISSED),
 * non-zero on errors (a failed request, a server that does not start). `--quick` runs a short
 * version; `--profile` writes a V8 CPU profile of each server process to a temporary directory.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type ServerChild, startServerChild } from './child.ts';
import {
  type ClientAuthentication,
  runTokenLoad,
  type TokenLoadResult,
  tokenRequestFactory,
} from './client-credentials.ts';
import { createKeepAliveAgent, request } from './http-client.ts';
import { type OnboardingResult, onboard } from './onboarding.ts';
import { machineBusySeconds, median, nowMs, ownCpuSeconds, round, summarize } from './stats.ts';
import {
  type LoadResult,
  mcpHeaders,
  READ_TOOL,
  runToolCallLoad,
  toolCallBody,
  toolResultText,
} from './tool-calls.ts';

const TARGETS = { ratio: 0.85, onboardingP50Ms: 150, tokensPerCoreSecond: 1000 };
/** A window during which other processes used more than this many cores counts as disturbed. */
const DISTURBED_OTHER_CORES = 0.25;

const { values: flags } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, profile: { type: 'boolean', default: false } },
});

const PLAN = flags.quick
  ? {
      onboarding: { warmup: 1, measured: 5 },
      toolCalls: {
        concurrency: 8,
        warmupSlices: 1,
        warmupSliceMs: 500,
        pairs: 2,
        maxPairs: 2,
        minUndisturbedPairs: 1,
        sliceMs: 1000,
        maxCallsPerSlice: 100_000,
      },
      tokens: { concurrency: 16, warmupMs: 300, durationMs: 1000, attempts: 1, maxRequests: 100_000 },
    }
  : {
      onboarding: { warmup: 2, measured: 20 },
      toolCalls: {
        concurrency: 8,
        // The JIT needs several seconds of this traffic before a process reaches its steady speed.
        warmupSlices: 3,
        warmupSliceMs: 1500,
        pairs: 6,
        // More pairs (bounded) while fewer than minUndisturbedPairs were free of other load.
        maxPairs: 12,
        minUndisturbedPairs: 4,
        sliceMs: 2000,
        maxCallsPerSlice: 1_000_000,
      },
      tokens: { concurrency: 16, warmupMs: 1000, durationMs: 3000, attempts: 3, maxRequests: 1_000_000 },
    };

const profileDir = flags.profile
  ? mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-profiles-'))
  : undefined;
const childOptions = profileDir ? { execArgv: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] } : {};

const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);
const mark = (met: boolean) => (met ? 'met' : 'MISSED');

const errors: string[] = [];
function checkErrors(what: string, result: { errors: number; firstError: string | undefined }) {
  if (result.errors > 0)
    errors.push(`${what}: ${result.errors} failed requests (first: ${result.firstError})`);
}

/**
 * One measured window: the load, the CPU the server process and this process spent on it, and the
 * cores the rest of the machine used meanwhile (other sessions, builds: noise).
 */
interface Measured<T> {
  result: T;
  /** CPU seconds of the server process and of this one during the window. */
  serverCpu: number;
  clientCpu: number;
  /** Cores the other processes of the machine used meanwhile, on average. */
  otherCores: number;
}

async function measured<T extends { elapsedMs: number }>(
  server: ServerChild,
  run: () => Promise<T>,
): Promise<Measured<T>> {
  const machineBefore = machineBusySeconds();
  const serverBefore = await server.cpuSeconds();
  const clientBefore = ownCpuSeconds();
  const result = await run();
  const serverCpu = (await server.cpuSeconds()) - serverBefore;
  const clientCpu = ownCpuSeconds() - clientBefore;
  const machine = machineBusySeconds() - machineBefore;
  const seconds = result.elapsedMs / 1000;
  const otherCores = Math.max(0, (machine - serverCpu - clientCpu) / seconds);
  return { result, serverCpu, clientCpu, otherCores };
}

// --- 1 and 2: the stack ------------------------------------------------------------------------

interface Slice {
  calls: number;
  elapsedMs: number;
  serverCpu: number;
  otherCores: number;
  latencies: number[];
}

const callsPerSecond = (slice: Slice) => slice.calls / (slice.elapsedMs / 1000);
const cpuPerCall = (slice: Slice) => slice.serverCpu / slice.calls;

async function benchOnboarding(secured: ServerChild) {
  const { warmup, measured: count } = PLAN.onboarding;
  progress(`onboarding ${warmup} + ${count} agents`);
  const tokens: string[] = [];
  for (let i = 0; i < warmup; i++) tokens.push((await onboard(secured.urls.mcpUrl)).accessToken);
  const { result: onboardings, otherCores } = await measured(secured, async () => {
    const started = nowMs();
    const results: OnboardingResult[] = [];
    for (let i = 0; i < count; i++) results.push(await onboard(secured.urls.mcpUrl));
    return Object.assign(results, { elapsedMs: nowMs() - started });
  });
  tokens.push(...onboardings.map((o) => o.accessToken));
  const totals = summarize(onboardings.map((o) => o.totalMs));
  const phase = (name: keyof OnboardingResult['phases']) =>
    round(summarize(onboardings.map((o) => o.phases[name])).p50);
  return {
    tokens,
    onboarding: {
      count: totals.count,
      p50_ms: round(totals.p50),
      p90_ms: round(totals.p90),
      max_ms: round(totals.max),
      mean_ms: round(totals.mean),
      phases_p50_ms: {
        discovery: phase('discovery'),
        registration: phase('registration'),
        authorization: phase('authorization'),
        token: phase('token'),
        first_call: phase('firstCall'),
      },
      other_load_cores: round(otherCores),
      target_p50_ms: TARGETS.onboardingP50Ms,
      met: totals.p50 < TARGETS.onboardingP50Ms,
    },
  };
}

async function benchToolCalls(secured: ServerChild, unsecured: ServerChild, tokens: string[]) {
  const plan = PLAN.toolCalls;
  // Each secured caller is one of the agents onboarded before, with its own token.
  const chains = {
    secured: { server: secured, tokenFor: (i: number) => tokens[i % tokens.length] },
    unsecured: { server: unsecured, tokenFor: (_: number) => undefined },
  };
  type ChainName = keyof typeof chains;
  const agents = {
    secured: createKeepAliveAgent(plan.concurrency),
    unsecured: createKeepAliveAgent(plan.concurrency),
  };
  const load = (name: ChainName, ms: number): Promise<LoadResult> =>
    runToolCallLoad({
      url: new URL(chains[name].server.urls.mcpUrl),
      agent: agents[name],
      tokenFor: chains[name].tokenFor,
      concurrency: plan.concurrency,
      durationMs: ms,
      maxCalls: plan.maxCallsPerSlice,
    });

  try {
    for (const name of ['secured', 'unsecured'] as const) {
      const { server, tokenFor } = chains[name];
      const answer = await request(agents[name], new URL(server.urls.mcpUrl), {
        method: 'POST',
        headers: mcpHeaders(tokenFor(0)),
        body: toolCallBody(),
      });
      const text = toolResultText(answer);
      if (!text.includes(`"symbol": "${READ_TOOL.arguments.symbol}"`)) {
        throw new Error(`the ${name} chain answered an unexpected tool result: ${text.slice(0, 200)}`);
      }
    }
    progress(`tool calls: warming up both chains (${plan.warmupSlices} × ${plan.warmupSliceMs} ms each)`);
    for (let w = 0; w < plan.warmupSlices; w++) {
      for (const name of ['secured', 'unsecured'] as const) {
        checkErrors(`${name} warm-up`, await load(name, plan.warmupSliceMs));
      }
    }

    // Pairs of windows, in alternating order (ABBA), so that drift affects both chains alike.
    const pairs: Array<Record<ChainName, Slice> & { disturbed: boolean }> = [];
    const undisturbed = () => pairs.filter((pair) => !pair.disturbed).length;
    for (let p = 0; p < plan.maxPairs; p++) {
      if (p >= plan.pairs && undisturbed() >= plan.minUndisturbedPairs) break;
      const order: ChainName[] = p % 2 === 0 ? ['secured', 'unsecured'] : ['unsecured', 'secured'];
      const pair: Partial<Record<ChainName, Slice>> = {};
      for (const name of order) {
        const { result, serverCpu, otherCores } = await measured(chains[name].server, () =>
          load(name, plan.sliceMs),
        );
        checkErrors(`${name} tool calls`, result);
        pair[name] = {
          calls: result.latencies.length,
          elapsedMs: result.elapsedMs,
          serverCpu,
          otherCores,
          latencies: result.latencies,
        };
      }
      const complete = pair as Record<ChainName, Slice>;
      const disturbed =
        Math.max(complete.secured.otherCores, complete.unsecured.otherCores) > DISTURBED_OTHER_CORES;
      pairs.push({ ...complete, disturbed });
      progress(
        `tool calls: pair ${p + 1}: secured ${Math.round(callsPerSecond(complete.secured))}/s, ` +
          `unsecured ${Math.round(callsPerSecond(complete.unsecured))}/s` +
          (disturbed ? ' (disturbed by other load on the machine)' : ''),
      );
    }

    const clean = undisturbed() >= plan.minUndisturbedPairs;
    const used = clean ? pairs.filter((pair) => !pair.disturbed) : pairs;
    const summary = (name: ChainName) => {
      const slices = used.map((pair) => pair[name]);
      const calls = slices.reduce((total, slice) => total + slice.calls, 0);
      const seconds = slices.reduce((total, slice) => total + slice.elapsedMs, 0) / 1000;
      const cpu = slices.reduce((total, slice) => total + slice.serverCpu, 0);
      const latency = summarize(slices.flatMap((slice) => slice.latencies));
      return {
        calls,
        calls_per_second: round(calls / seconds),
        p50_ms: round(latency.p50),
        p99_ms: round(latency.p99),
        server_cpu_cores: round(cpu / seconds),
        server_cpu_us_per_call: round((cpu * 1e6) / calls),
      };
    };
    const ratio = median(used.map((pair) => callsPerSecond(pair.secured) / callsPerSecond(pair.unsecured)));
    const cpuRatio = median(used.map((pair) => cpuPerCall(pair.unsecured) / cpuPerCall(pair.secured)));
    return {
      tool: READ_TOOL.name,
      concurrency: plan.concurrency,
      slice_ms: plan.sliceMs,
      pairs: pairs.length,
      pairs_used: used.length,
      pairs_disturbed: pairs.length - undisturbed(),
      /** False when too few pairs were free of other load: the ratio then mostly measures the noise. */
      reliable: clean,
      secured: summary('secured'),
      unsecured: summary('unsecured'),
      /** Median over the pairs of secured calls/s ÷ unsecured calls/s. */
      ratio: round(ratio),
      /** Median over the pairs of unsecured ÷ secured server CPU per call: the ratio on a dedicated core. */
      cpu_ratio: round(cpuRatio),
      pair_ratios: used.map((pair) => round(callsPerSecond(pair.secured) / callsPerSecond(pair.unsecured))),
      other_load_cores: round(
        median(pairs.flatMap((pair) => [pair.secured.otherCores, pair.unsecured.otherCores])),
      ),
      target_ratio: TARGETS.ratio,
      met: ratio >= TARGETS.ratio,
    };
  } finally {
    agents.secured.destroy();
    agents.unsecured.destroy();
  }
}

async function benchStack() {
  progress('starting the stack and the unsecured baseline (child processes)');
  const secured = await startServerChild('stack', childOptions);
  const unsecured = await startServerChild('unsecured', childOptions).catch(async (error: unknown) => {
    await secured.stop();
    throw error;
  });
  try {
    // Onboarding first: its agents are the secured chain's callers.
    const { tokens, onboarding } = await benchOnboarding(secured);
    const toolCalls = await benchToolCalls(secured, unsecured, tokens);
    return { onboarding, toolCalls };
  } finally {
    await Promise.all([secured.stop(), unsecured.stop()]);
  }
}

// --- 3: client credentials ---------------------------------------------------------------------

async function benchTokens() {
  const { concurrency, warmupMs, durationMs, attempts, maxRequests } = PLAN.tokens;
  const rows = [];
  for (const storage of ['sqlite', 'memory'] as const) {
    progress(`client credentials: starting the authorization server (${storage} store, child process)`);
    const server = await startServerChild('authorization-server', { ...childOptions, storage });
    try {
      for (const auth of ['private_key_jwt', 'client_secret_basic'] as ClientAuthentication[]) {
        const issuer = server.urls.issuer;
        const next = await tokenRequestFactory(issuer, auth, server.privateKeyFiles['example-workload']);
        const agent = createKeepAliveAgent(concurrency);
        const run = (ms: number) =>
          runTokenLoad({ issuer, agent, next, concurrency, durationMs: ms, maxRequests });
        progress(`client credentials: ${storage}, ${auth}, warm-up ${warmupMs} ms`);
        checkErrors(`tokens ${storage} ${auth} warm-up`, await run(warmupMs));
        // A window disturbed by other load on the machine is measured again (bounded); the least
        // disturbed attempt counts.
        let best: Measured<TokenLoadResult> | undefined;
        for (let attempt = 1; attempt <= attempts; attempt++) {
          progress(`client credentials: ${storage}, ${auth}, ${concurrency} in flight, ${durationMs} ms`);
          const window = await measured(server, () => run(durationMs));
          checkErrors(`tokens ${storage} ${auth}`, window.result);
          if (!best || window.otherCores < best.otherCores) best = window;
          if (window.otherCores <= DISTURBED_OTHER_CORES) break;
          progress(
            `client credentials: disturbed by other load on the machine (${round(window.otherCores)} cores)`,
          );
        }
        agent.destroy();
        const { result, serverCpu, clientCpu, otherCores } = best!;
        const seconds = result.elapsedMs / 1000;
        const latency = summarize(result.latencies);
        const perCore = result.tokens / serverCpu;
        rows.push({
          storage,
          client_auth: auth,
          tokens: result.tokens,
          tokens_per_second: round(result.tokens / seconds),
          server_cpu_cores: round(serverCpu / seconds),
          tokens_per_core_second: round(perCore),
          server_cpu_us_per_token: round((serverCpu * 1e6) / result.tokens),
          client_cpu_cores: round(clientCpu / seconds),
          other_load_cores: round(otherCores),
          p50_ms: round(latency.p50),
          p99_ms: round(latency.p99),
          met: perCore >= TARGETS.tokensPerCoreSecond,
        });
      }
    } finally {
      await server.stop();
    }
  }
  const headline = rows.find((row) => row.storage === 'sqlite' && row.client_auth === 'private_key_jwt')!;
  return {
    concurrency,
    duration_ms: durationMs,
    rate_limit_note: 'authorizationServer.tokenEndpointRateLimit raised to 10,000,000/min for the bench',
    rows,
    target_tokens_per_core_second: TARGETS.tokensPerCoreSecond,
    /** Judged on the default deployment: SQLite store, the pre-registered private_key_jwt workload. */
    met: headline.met,
  };
}

// --- report ------------------------------------------------------------------------------------

function table(rows: Array<Array<string | number>>): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => String(row[c]).length)));
  return rows
    .map((row) =>
      row
        .map((cell, c) => String(cell).padEnd(widths[c]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

async function main(): Promise<number> {
  const cpus = os.cpus();
  const machine = {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    memory_gib: round(os.totalmem() / 2 ** 30),
    load_average_at_start: os.loadavg().map(round),
  };
  const date = new Date().toISOString();
  const started = nowMs();
  progress(
    `${flags.quick ? 'quick' : 'full'} run on ${machine.cpu} × ${machine.cores}, Node ${machine.node}`,
  );

  const { onboarding, toolCalls } = await benchStack();
  const tokens = await benchTokens();
  const durationS = round((nowMs() - started) / 1000);

  const s = toolCalls.secured;
  const u = toolCalls.unsecured;
  const p = onboarding.phases_p50_ms;
  const out = [
    '',
    `Gatehouse benchmark, ${date}, ${durationS} s` +
      (flags.quick ? ' (quick run: short warm-up, the JIT is not at full speed; indicative only)' : ''),
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memory_gib} GiB, ${machine.os}, Node ${machine.node}; ` +
      `load average at start ${machine.load_average_at_start.join(' ')}`,
    '',
    `1. Tool calls: ${toolCalls.tool} through gateway → MCP server → API, warm caches, ${toolCalls.concurrency} concurrent callers, ` +
      `${toolCalls.pairs_used} of ${toolCalls.pairs} pairs of ${toolCalls.slice_ms} ms windows used (${toolCalls.pairs_disturbed} disturbed)`,
    table([
      ['chain', 'calls/s', 'p50 ms', 'p99 ms', 'server CPU cores', 'server CPU µs/call'],
      ['secured', s.calls_per_second, s.p50_ms, s.p99_ms, s.server_cpu_cores, s.server_cpu_us_per_call],
      ['unsecured', u.calls_per_second, u.p50_ms, u.p99_ms, u.server_cpu_cores, u.server_cpu_us_per_call],
    ]),
    `ratio secured/unsecured (median of pairs): ${toolCalls.ratio}; by server CPU per call: ${toolCalls.cpu_ratio}; ` +
      `target ≥ ${TARGETS.ratio}: ${mark(toolCalls.met)}` +
      (toolCalls.reliable
        ? ''
        : ' (UNRELIABLE: other processes kept the machine busy; run again on a quiet machine)'),
    '',
    `2. Cold onboarding, first 401 → first tool result, headless (${onboarding.count} new agents, p50 per phase)`,
    table([
      ['p50 ms', 'p90 ms', 'max ms', 'discovery', 'registration', 'authorization', 'token', 'first call'],
      [
        onboarding.p50_ms,
        onboarding.p90_ms,
        onboarding.max_ms,
        p.discovery,
        p.registration,
        p.authorization,
        p.token,
        p.first_call,
      ],
    ]),
    `target p50 < ${TARGETS.onboardingP50Ms} ms: ${mark(onboarding.met)}`,
    '',
    `3. Client credentials tokens, ${tokens.concurrency} requests in flight, ${tokens.duration_ms} ms per row (token endpoint rate limit raised)`,
    table([
      ['store', 'client auth', 'tokens/s', 'AS CPU cores', 'tokens/s per core', 'p50 ms', 'p99 ms', 'target'],
      ...tokens.rows.map((row) => [
        row.storage,
        row.client_auth,
        row.tokens_per_second,
        row.server_cpu_cores,
        row.tokens_per_core_second,
        row.p50_ms,
        row.p99_ms,
        mark(row.met),
      ]),
    ]),
    `target ≥ ${TARGETS.tokensPerCoreSecond} tokens/s per core (judged on SQLite, private_key_jwt): ${mark(tokens.met)}`,
  ];
  if (profileDir) out.push('', `CPU profiles of the server processes: ${profileDir}`);
  if (errors.length > 0) out.push('', 'ERRORS:', ...errors.map((e) => `  ${e}`));
  out.push('');
  console.log(out.join('\n'));
  console.log(
    JSON.stringify({
      bench: 'gatehouse',
      date,
      quick: flags.quick,
      duration_s: durationS,
      machine,
      tool_calls: toolCalls,
      onboarding,
      client_credentials: tokens,
      errors,
    }),
  );
  return errors.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`bench: failed: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  },
);
