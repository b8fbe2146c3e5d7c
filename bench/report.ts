/**
 * The human-readable report of a bench run: one table per part, each headline beside its target
 * (met or MISSED), and UNRELIABLE where too few windows were free of other load on the machine.
 */
import type { benchGatewayLatency } from './gateway-latency.ts';
import type { benchOnboarding } from './onboarding-bench.ts';
import type { benchTokens } from './token-bench.ts';
import type { benchTokenScaling } from './token-scaling.ts';
import type { benchToolCalls } from './tool-call-bench.ts';

export interface Machine {
  cpu: string;
  cores: number;
  node: string;
  os: string;
  memory_gib: number;
  load_average_at_start: number[];
}

export interface Results {
  date: string;
  quick: boolean;
  durationS: number;
  machine: Machine;
  // Absent when `--part` left that half of the run out.
  toolCalls?: Awaited<ReturnType<typeof benchToolCalls>>;
  gatewayLatency?: Awaited<ReturnType<typeof benchGatewayLatency>>;
  tokens?: Awaited<ReturnType<typeof benchTokens>>;
  scaling?: {
    postgres: Awaited<ReturnType<typeof benchTokenScaling>> | undefined;
    sqlite: Awaited<ReturnType<typeof benchTokenScaling>>;
  };
  onboarding?: Awaited<ReturnType<typeof benchOnboarding>>['onboarding'];
  errors: string[];
}

const mark = (met: boolean) => (met ? 'met' : 'MISSED');
const unreliable = (reliable: boolean) =>
  reliable ? '' : ' (UNRELIABLE: other processes kept the machine busy; run again on a quiet machine)';
const thousands = (value: number) => value.toLocaleString('en-US');

export function table(rows: Array<Array<string | number>>): string {
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

const CHAIN_LABELS = {
  secured: 'secured: gateway → MCP server → API (+ authorization server)',
  baseline: 'independent baseline: node:http proxy → MCP SDK server → API handlers',
  unsecured: "bench's own unsecured chain: Gatehouse's parts, no authorization",
  two_gateways: 'secured, callers split over two gateways',
} as const;

const SERVER_LABELS = {
  sqlite: 'Gatehouse, SQLite',
  postgres: 'Gatehouse, PostgreSQL',
  memory: 'Gatehouse, in-memory',
  bare: 'bare oidc-provider',
};

type Chains = Required<Pick<Results, 'toolCalls' | 'gatewayLatency' | 'onboarding'>>;
type Tokens = Required<Pick<Results, 'tokens' | 'scaling'>>;

const byHop = (hops: Record<string, number>) =>
  Object.entries(hops)
    .map(([hop, us]) => `${hop} ${us}`)
    .join(', ');

/** Parts 1 and 2. */
function chainsSection({ toolCalls: t, gatewayLatency: g }: Chains): string[] {
  return [
    `1. Tool calls: ${t.tool}, ${t.concurrency} concurrent callers, warm caches, one process per hop; ` +
      `${t.rounds_used} of ${t.rounds} rounds of 4 × ${t.slice_ms} ms windows in rotating order used (${t.rounds_disturbed} disturbed)`,
    table([
      ['chain', 'calls/s', 'p50 ms', 'p99 ms', 'CPU cores', 'CPU µs/call', 'CPU µs/call by process'],
      ...(['secured', 'baseline', 'unsecured', 'two_gateways'] as const).map((name) => [
        CHAIN_LABELS[name],
        t[name].calls_per_second,
        t[name].p50_ms,
        t[name].p99_ms,
        t[name].cpu_cores,
        t[name].cpu_us_per_call,
        byHop(t[name].cpu_us_per_call_by_hop),
      ]),
    ]),
    `secured ÷ independent baseline (median of rounds): ${t.ratio_vs_baseline}; by CPU per call: ${t.cpu_ratio_vs_baseline}; ` +
      `target ≥ ${t.target_ratio_vs_baseline}: ${mark(t.met)}${unreliable(t.reliable)}`,
    `secured ÷ own unsecured chain (median of rounds): ${t.ratio_vs_unsecured}; by CPU per call: ${t.cpu_ratio_vs_unsecured}`,
    `secured with two gateways (callers split over both) ÷ independent baseline: ${t.two_gateways_ratio_vs_baseline}; ÷ one gateway: ${t.two_gateways_ratio_vs_one}`,
    '',
    `2. Gateway added latency on a cache hit: one caller, through the gateway (opaque token) against straight to the MCP server ` +
      `(the phantom JWT), and the same for the independent baseline's plain proxy; ${g.rounds_used} of ${g.rounds} rounds of 4 × ${g.window_ms} ms windows used (${g.rounds_disturbed} disturbed)`,
    table([
      ['route', 'calls', 'p50 ms', 'p99 ms'],
      ['through the gateway', g.gateway.calls, g.gateway.p50_ms, g.gateway.p99_ms],
      ['straight to the MCP server', g.direct.calls, g.direct.p50_ms, g.direct.p99_ms],
      ['baseline: through its plain proxy', g.proxy.calls, g.proxy.p50_ms, g.proxy.p99_ms],
      ['baseline: straight to its MCP server', g.plain.calls, g.plain.p50_ms, g.plain.p99_ms],
    ]),
    `added p50 (median of rounds): ${g.added_p50_ms} ms; gateway CPU per call: ${g.gateway_cpu_us_per_call} µs; ` +
      `target ≤ ${g.target_added_p50_ms} ms: ${mark(g.met)}${unreliable(g.reliable)}`,
    `a plain node:http proxy adds (median of rounds): ${g.plain_proxy_added_p50_ms} ms, the floor of any hop on this machine`,
    '',
  ];
}

/** Parts 3 and 4. */
function tokensSection({ tokens: k, scaling: s }: Tokens): string[] {
  return [
    `3. Client credentials tokens, ${k.concurrency} requests in flight; ${k.rounds_used} of ${k.rounds} rounds of ${k.rows.length} × ${k.window_ms} ms windows ` +
      `in rotating order used (${k.rounds_disturbed} disturbed); Gatehouse's token endpoint rate limits raised`,
    table([
      [
        'server',
        'client auth',
        'tokens/s',
        'CPU µs/token',
        'tokens/CPU-s',
        'server cores',
        'client cores',
        'p50 ms',
        'p99 ms',
      ],
      ...k.rows.map((row) => [
        SERVER_LABELS[row.server],
        row.client_auth,
        row.tokens_per_second,
        row.server_cpu_us_per_token,
        row.tokens_per_cpu_second,
        row.server_cpu_cores,
        row.client_cpu_cores,
        row.p50_ms,
        row.p99_ms,
      ]),
    ]),
    `Gatehouse SQLite ÷ bare oidc-provider, private_key_jwt (median of rounds): ${k.ratio_sqlite_vs_bare_private_key_jwt} ` +
      `(by CPU per token: ${k.ratios.sqlite_vs_bare_private_key_jwt?.by_cpu}); target ≥ ${k.target_ratio_vs_bare}: ${mark(k.ratio_met)}${unreliable(k.reliable)}`,
    `  also ÷ bare: SQLite client_secret_basic ${k.ratios.sqlite_vs_bare_client_secret_basic?.tokens_per_second}, ` +
      `in-memory private_key_jwt ${k.ratios.memory_vs_bare_private_key_jwt?.tokens_per_second}, ` +
      `in-memory client_secret_basic ${k.ratios.memory_vs_bare_client_secret_basic?.tokens_per_second}`,
    `Gatehouse SQLite private_key_jwt tokens per CPU-second: ${thousands(k.tokens_per_cpu_second)}; ` +
      `target ≥ ${thousands(k.target_tokens_per_cpu_second)}: ${mark(k.cpu_met)}${unreliable(k.reliable)}`,
    '',
    ...(k.ratio_postgres_vs_sqlite_private_key_jwt === undefined
      ? ['Gatehouse on PostgreSQL: left out (no PostgreSQL server answered)']
      : [
          `Gatehouse PostgreSQL ÷ SQLite, one instance, private_key_jwt (median of rounds): ${k.ratio_postgres_vs_sqlite_private_key_jwt}; ` +
            `PostgreSQL ÷ bare: ${k.ratios.postgres_vs_bare_private_key_jwt?.tokens_per_second}${unreliable(k.reliable)}`,
        ]),
    '',
    ...[s.postgres, s.sqlite].flatMap((scaling) => (scaling ? scalingLines(scaling) : [])),
  ];
}

type Scaling = NonNullable<Tokens['scaling']['sqlite']>;

/** Part 4, for one store. */
function scalingLines(s: Scaling): string[] {
  const verdict =
    s.target_speedup === undefined
      ? `no target: ${s.note}`
      : `target ≥ ${s.target_speedup}: ${mark(s.met === true)} (${s.note})`;
  return [
    `4. Token endpoint scaling on ${s.store}: private_key_jwt, 1 and 2 authorization server processes on one store, ` +
      `the load split across them; ${s.rounds_used} of ${s.rounds} rounds used (${s.rounds_disturbed} disturbed)`,
    table([
      ['processes', 'tokens/s', 'CPU µs/token', 'p50 ms', 'p99 ms', 'failed requests', 'cores busy'],
      ...[s.one_process, s.two_processes].map((row) => [
        row.processes,
        row.tokens_per_second,
        row.server_cpu_us_per_token,
        row.p50_ms,
        row.p99_ms,
        row.failed_requests,
        `${row.machine_cores_busy} of ${s.machine_cores}`,
      ]),
    ]),
    `2 ÷ 1 processes (median of rounds): ${s.speedup}; ${verdict}` +
      (s.failed_requests > 0 ? `; first failure: ${s.first_error}` : '') +
      unreliable(s.reliable),
    `  the most this machine allows: ${s.ceiling} (${s.machine_cores} cores ÷ the cores the 1-process setup keeps busy: ` +
      'its server, the database server and the load generator; a token costing the same CPU with two processes)',
    '',
  ];
}

/** Part 5. */
function onboardingSection({ onboarding: o }: Chains): string[] {
  const p = o.phases_p50_ms;
  return [
    `5. Cold onboarding against the secured chain, first 401 → first tool result, headless (${o.count} new agents, p50 per phase)`,
    table([
      [
        'p50 ms',
        'p90 ms',
        'max ms',
        'discovery',
        'registration',
        'authorization',
        'token',
        'first call',
        'CPU ms each',
      ],
      [
        o.p50_ms,
        o.p90_ms,
        o.max_ms,
        p.discovery,
        p.registration,
        p.authorization,
        p.token,
        p.first_call,
        o.cpu_ms_per_onboarding,
      ],
    ]),
    `target p50 ≤ ${o.target_p50_ms} ms: ${mark(o.met)}` +
      (o.disturbed ? ` (other load on the machine during it: ${o.other_load_cores} cores)` : ''),
    '',
  ];
}

/** The targets' summary rows of the parts that ran. */
function targetRows(chains: Chains | undefined, tokens: Tokens | undefined): string[][] {
  const rows: Array<Array<string | number>> = [];
  if (chains) {
    const { toolCalls: t, gatewayLatency: g } = chains;
    rows.push(
      [
        '  tool calls, secured ÷ independent baseline',
        `≥ ${t.target_ratio_vs_baseline}`,
        t.ratio_vs_baseline,
        mark(t.met),
      ],
      ['  gateway added latency, p50', `≤ ${g.target_added_p50_ms} ms`, g.added_p50_ms, mark(g.met)],
    );
  }
  if (tokens) {
    const k = tokens.tokens;
    rows.push(
      [
        '  tokens, Gatehouse SQLite ÷ bare, private_key_jwt',
        `≥ ${k.target_ratio_vs_bare}`,
        k.ratio_sqlite_vs_bare_private_key_jwt,
        mark(k.ratio_met),
      ],
      [
        '  tokens per CPU-second, SQLite, private_key_jwt',
        `≥ ${thousands(k.target_tokens_per_cpu_second)}`,
        k.tokens_per_cpu_second,
        mark(k.cpu_met),
      ],
    );
    const pg = tokens.scaling.postgres;
    if (pg)
      rows.push([
        '  tokens, 2 ÷ 1 processes on PostgreSQL',
        `≥ ${pg.target_speedup}`,
        pg.speedup,
        mark(pg.met === true),
      ]);
  }
  if (chains) {
    const o = chains.onboarding;
    rows.push(['  onboarding p50', `≤ ${o.target_p50_ms} ms`, o.p50_ms, mark(o.met)]);
  }
  return rows.map((row) => row.map(String));
}

export function formatReport(r: Results): string {
  const m = r.machine;
  const chains: Chains | undefined =
    r.toolCalls && r.gatewayLatency && r.onboarding
      ? { toolCalls: r.toolCalls, gatewayLatency: r.gatewayLatency, onboarding: r.onboarding }
      : undefined;
  const tokens: Tokens | undefined =
    r.tokens && r.scaling ? { tokens: r.tokens, scaling: r.scaling } : undefined;
  const out = [
    '',
    `Gatehouse benchmark, ${r.date}, ${r.durationS} s` +
      (r.quick ? ' (quick run: short windows, the JIT is not at full speed; indicative only)' : '') +
      (chains && tokens ? '' : ' (part of the run only: --part)'),
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memory_gib} GiB, ${m.os}, Node ${m.node}; load average at start ${m.load_average_at_start.join(' ')}`,
    '',
    ...(chains ? chainsSection(chains) : []),
    ...(tokens ? tokensSection(tokens) : []),
    ...(chains ? onboardingSection(chains) : []),
    'Targets:',
    table(targetRows(chains, tokens)),
  ];
  const anyUnreliable =
    (chains !== undefined && (!chains.toolCalls.reliable || !chains.gatewayLatency.reliable)) ||
    (tokens !== undefined && !tokens.tokens.reliable);
  if (anyUnreliable)
    out.push(
      '',
      'Some results are UNRELIABLE: the machine was busy with other work during most of their windows.',
    );
  if (r.errors.length > 0) out.push('', 'ERRORS:', ...r.errors.map((e) => `  ${e}`));
  out.push('');
  return out.join('\n');
}
