/**
 * Part 2: the latency the gateway adds to a tool call on a cache hit. One caller (concurrency 1, so
 * this is latency, not throughput) sends `get_stock`, in interleaved windows:
 *
 * - `gateway`: through the gateway with the agent's opaque token (its introspection cached: warm);
 * - `direct`: straight to the MCP server with the phantom JWT the gateway forwards for that token,
 *   obtained as the gateway obtains it: introspection with the gateway's client credentials and
 *   `Accept: application/jwt`.
 *
 * Behind the gateway both are the same calls (MCP server, token exchange cache, API), so the
 * difference of their p50 is what the gateway hop costs: a loopback HTTP hop, the introspection
 * cache lookup and the proxying. The headline is the median over rounds of that difference.
 *
 * Beside it, the floor: the same pair on the independent baseline (`proxy`: through its plain
 * node:http proxy; `plain`: straight to its MCP server), what any proxy hop adds on this machine.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { basic } from '../test/helpers/oauth.ts';
import type { Chain } from './chains.ts';
import { createKeepAliveAgent, request } from './http-client.ts';
import { measured } from './measure.ts';
import { noteWindow } from './profile-windows.ts';
import { checkErrors, progress } from './progress.ts';
import { medianOver, type Round, type RoundPlan, runRounds, usableRounds } from './rounds.ts';
import { round, summarize } from './stats.ts';
import { MCP_PATH, mcpHeaders, runToolCallLoad, toolCallBody, toolResultText } from './tool-calls.ts';

export interface GatewayLatencyPlan {
  warmupMs: number;
  windowMs: number;
  maxCallsPerWindow: number;
  rounds: RoundPlan;
}

const ROUTES = ['gateway', 'direct', 'proxy', 'plain'] as const;
type Route = (typeof ROUTES)[number];

interface Slice {
  latencies: number[];
  cpuByHop: Record<string, number>;
  disturbed: boolean;
  otherCores: number;
}

/** The phantom JWT for `token`, as the gateway gets it from the authorization server. */
async function phantomTokenFor(secured: Chain, token: string): Promise<string> {
  const secretFile = path.join(secured.dataDir, 'secrets/gatehouse-gateway.secret');
  const secret = readFileSync(secretFile, 'utf8').trim();
  const agent = createKeepAliveAgent(1);
  try {
    const answer = await request(agent, new URL(`${secured.urls.issuer}/introspect`), {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: basic('gatehouse-gateway', secret),
        accept: 'application/jwt',
      },
      body: new URLSearchParams({ token }).toString(),
    });
    if (answer.status !== 200 || answer.body.split('.').length !== 3) {
      throw new Error(
        `introspection for a phantom token answered ${answer.status}: ${answer.body.slice(0, 200)}`,
      );
    }
    return answer.body;
  } finally {
    agent.destroy();
  }
}

const p50 = (slice: Slice) => summarize(slice.latencies).p50;

export async function benchGatewayLatency(
  secured: Chain,
  baseline: Chain,
  token: string,
  plan: GatewayLatencyPlan,
  /** The most the gateway may add at p50 to meet the target, in ms. */
  targetMs: number,
) {
  const phantom = await phantomTokenFor(secured, token);
  const routes: Record<Route, { url: URL; token: string; hops: typeof secured.hops }> = {
    gateway: { url: new URL(secured.mcpUrl), token, hops: secured.hops },
    direct: {
      url: new URL(`${secured.urls.mcpServerUrl}${MCP_PATH}`),
      token: phantom,
      hops: secured.hops.filter((hop) => !hop.name.endsWith('/gateway')),
    },
    proxy: { url: new URL(baseline.mcpUrl), token: '', hops: baseline.hops },
    plain: {
      url: new URL(`${baseline.urls.mcpServerUrl}${MCP_PATH}`),
      token: '',
      hops: baseline.hops.filter((hop) => !hop.name.endsWith('/proxy')),
    },
  };
  const agents = Object.fromEntries(ROUTES.map((route) => [route, createKeepAliveAgent(1)])) as Record<
    Route,
    ReturnType<typeof createKeepAliveAgent>
  >;
  const load = (route: Route, ms: number) =>
    runToolCallLoad({
      urls: [routes[route].url],
      agent: agents[route],
      tokenFor: () => routes[route].token || undefined,
      concurrency: 1,
      durationMs: ms,
      maxCalls: plan.maxCallsPerWindow,
    });
  try {
    for (const route of ROUTES) {
      const answer = await request(agents[route], routes[route].url, {
        method: 'POST',
        headers: mcpHeaders(routes[route].token || undefined),
        body: toolCallBody(),
      });
      toolResultText(answer);
    }
    progress(`gateway latency: one caller, warming up both routes (${plan.warmupMs} ms each)`);
    for (const route of ROUTES)
      checkErrors(`gateway latency ${route} warm-up`, await load(route, plan.warmupMs));

    const measureSlice = async (route: Route): Promise<Slice> => {
      const window = await measured(routes[route].hops, () => load(route, plan.windowMs));
      checkErrors(`gateway latency ${route}`, window.result);
      noteWindow(
        'single-caller tool calls',
        routes[route].hops.map((hop) => hop.name),
        window,
        window.result.latencies.length,
      );
      return {
        latencies: window.result.latencies,
        cpuByHop: window.cpuByHop,
        disturbed: window.disturbed,
        otherCores: window.otherCores,
      };
    };
    const rounds = await runRounds(ROUTES, plan.rounds, measureSlice, (r) => {
      progress(
        `gateway latency: round ${r.index + 1}: p50 through the gateway ${round(p50(r.windows.gateway))} ms, ` +
          `direct ${round(p50(r.windows.direct))} ms; plain proxy ${round(p50(r.windows.proxy))} ms, ` +
          `direct ${round(p50(r.windows.plain))} ms` +
          (r.disturbed ? ' (disturbed by other load on the machine)' : ''),
      );
    });
    return summarizeLatency(
      rounds,
      plan,
      targetMs,
      routes.gateway.hops.find((hop) => hop.name.endsWith('/gateway'))!.name,
    );
  } finally {
    for (const agent of Object.values(agents)) agent.destroy();
  }
}

function summarizeLatency(
  rounds: Array<Round<Route, Slice>>,
  plan: GatewayLatencyPlan,
  targetMs: number,
  gatewayHop: string,
) {
  const { used, reliable, disturbed } = usableRounds(rounds, plan.rounds.minUndisturbed);
  const pooled = (route: Route) => summarize(used.flatMap((r) => r.windows[route].latencies));
  const gateway = pooled('gateway');
  const direct = pooled('direct');
  const added = medianOver(used, (r) => p50(r.windows.gateway) - p50(r.windows.direct));
  const floor = medianOver(used, (r) => p50(r.windows.proxy) - p50(r.windows.plain));
  const gatewayCpu = used.reduce((total, r) => total + r.windows.gateway.cpuByHop[gatewayHop]!, 0);
  return {
    concurrency: 1,
    window_ms: plan.windowMs,
    rounds: rounds.length,
    rounds_used: used.length,
    rounds_disturbed: disturbed,
    reliable,
    gateway: { calls: gateway.count, p50_ms: round(gateway.p50), p99_ms: round(gateway.p99) },
    direct: { calls: direct.count, p50_ms: round(direct.p50), p99_ms: round(direct.p99) },
    proxy: {
      calls: pooled('proxy').count,
      p50_ms: round(pooled('proxy').p50),
      p99_ms: round(pooled('proxy').p99),
    },
    plain: {
      calls: pooled('plain').count,
      p50_ms: round(pooled('plain').p50),
      p99_ms: round(pooled('plain').p99),
    },
    /** Median over the rounds of p50 through the gateway − p50 straight to the MCP server. */
    added_p50_ms: Math.round(added * 1000) / 1000,
    /** The same for the independent baseline's plain node:http proxy: what any proxy hop adds here. */
    plain_proxy_added_p50_ms: Math.round(floor * 1000) / 1000,
    /** The gateway process's CPU per call through it. */
    gateway_cpu_us_per_call: round((gatewayCpu * 1e6) / gateway.count),
    target_added_p50_ms: targetMs,
    met: added <= targetMs,
  };
}
