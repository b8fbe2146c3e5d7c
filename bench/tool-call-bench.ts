/**
 * Part 1: tool-call throughput of the three chains (bench/chains.ts), `concurrency` callers sending
 * `get_stock` with warm caches, measured in interleaved rounds of short windows (bench/rounds.ts).
 * The headline is the median over rounds of secured ÷ baseline calls per second; beside it,
 * secured ÷ unsecured. Each chain's CPU is summed over all of its processes.
 *
 * A fourth setup, `two gateways`, is the secured chain with its callers split over its two
 * gateway processes (issue 10: several gateways behind a load balancer, each with its own cache and
 * its own revocation stream): two gateways ÷ baseline, and two ÷ one gateway, from the same rounds.
 */
import type http from 'node:http';
import { CHAIN_NAMES, type Chain, type ChainName } from './chains.ts';
import { createKeepAliveAgent, request } from './http-client.ts';
import { measured } from './measure.ts';
import { noteWindow } from './profile-windows.ts';
import { checkErrors, progress } from './progress.ts';
import { medianOver, type Round, type RoundPlan, rotated, runRounds, usableRounds } from './rounds.ts';
import { median, round, summarize } from './stats.ts';
import {
  type LoadResult,
  mcpHeaders,
  READ_TOOL,
  runToolCallLoad,
  toolCallBody,
  toolResultText,
} from './tool-calls.ts';

export interface ToolCallPlan {
  concurrency: number;
  warmupSlices: number;
  warmupSliceMs: number;
  sliceMs: number;
  maxCallsPerSlice: number;
  rounds: RoundPlan;
}

interface Slice {
  calls: number;
  elapsedMs: number;
  cpu: number;
  cpuByHop: Record<string, number>;
  otherCores: number;
  disturbed: boolean;
  latencies: number[];
}

const callsPerSecond = (slice: Slice) => slice.calls / (slice.elapsedMs / 1000);
const cpuPerCall = (slice: Slice) => slice.cpu / slice.calls;
/** `secured/gateway` → `gateway`. */
const hopOf = (name: string) => name.slice(name.indexOf('/') + 1);

const SETUPS = [...CHAIN_NAMES, 'two gateways'] as const;
type Setup = (typeof SETUPS)[number];
/** The chain a setup runs on. */
const chainOf = (setup: Setup): ChainName => (setup === 'two gateways' ? 'secured' : setup);

export async function benchToolCalls(
  chains: Record<ChainName, Chain>,
  /** The secured chain's callers' opaque tokens (agents onboarded before), one per caller in turn. */
  tokens: readonly string[],
  plan: ToolCallPlan,
  /** The least secured ÷ baseline ratio that meets the target. */
  target: number,
) {
  const tokenFor = (name: ChainName) =>
    name === 'secured' ? (i: number) => tokens[i % tokens.length] : (_: number) => undefined;
  const agents = Object.fromEntries(
    SETUPS.map((setup) => [setup, createKeepAliveAgent(plan.concurrency)]),
  ) as Record<Setup, http.Agent>;
  const urlsOf = (setup: Setup): URL[] => {
    const chain = chains[chainOf(setup)];
    if (setup !== 'two gateways') return [new URL(chain.mcpUrl)];
    if (!chain.secondMcpUrl) throw new Error('the secured chain has no second gateway');
    return [new URL(chain.mcpUrl), new URL(chain.secondMcpUrl)];
  };
  const load = (setup: Setup, ms: number): Promise<LoadResult> =>
    runToolCallLoad({
      urls: urlsOf(setup),
      agent: agents[setup],
      tokenFor: tokenFor(chainOf(setup)),
      concurrency: plan.concurrency,
      durationMs: ms,
      maxCalls: plan.maxCallsPerSlice,
    });

  try {
    // The same answer from every chain, or the comparison is void.
    for (const setup of SETUPS) {
      for (const url of urlsOf(setup)) {
        const answer = await request(agents[setup], url, {
          method: 'POST',
          headers: mcpHeaders(tokenFor(chainOf(setup))(0)),
          body: toolCallBody(),
        });
        const text = toolResultText(answer);
        if (!text.includes(`"symbol": "${READ_TOOL.arguments.symbol}"`)) {
          throw new Error(`the ${setup} setup answered an unexpected tool result: ${text.slice(0, 200)}`);
        }
      }
    }
    progress(
      `tool calls: warming up the three chains and two gateways (${plan.warmupSlices} × ${plan.warmupSliceMs} ms each)`,
    );
    for (let w = 0; w < plan.warmupSlices; w++) {
      for (const setup of rotated(SETUPS, w)) {
        checkErrors(`${setup} warm-up`, await load(setup, plan.warmupSliceMs));
      }
    }

    const measureSlice = async (name: Setup): Promise<Slice> => {
      const chain = chains[chainOf(name)];
      const window = await measured(chain.hops, () => load(name, plan.sliceMs));
      checkErrors(`${name} tool calls`, window.result);
      const calls = window.result.latencies.length;
      noteWindow(
        'tool calls',
        chain.hops.map((hop) => hop.name),
        window,
        calls,
      );
      return {
        calls,
        elapsedMs: window.result.elapsedMs,
        cpu: window.cpu,
        cpuByHop: window.cpuByHop,
        otherCores: window.otherCores,
        disturbed: window.disturbed,
        latencies: window.result.latencies,
      };
    };
    const rounds = await runRounds(SETUPS, plan.rounds, measureSlice, (r) => {
      const rates = r.order.map((name) => `${name} ${Math.round(callsPerSecond(r.windows[name]))}/s`);
      progress(
        `tool calls: round ${r.index + 1} (${r.order.join(' → ')}): ${rates.join(', ')}` +
          (r.disturbed ? ' (disturbed by other load on the machine)' : ''),
      );
    });
    return summarizeToolCalls(rounds, plan, target);
  } finally {
    for (const agent of Object.values(agents)) agent.destroy();
  }
}

function summarizeToolCalls(rounds: Array<Round<Setup, Slice>>, plan: ToolCallPlan, target: number) {
  const { used, reliable, disturbed } = usableRounds(rounds, plan.rounds.minUndisturbed);
  const chain = (name: Setup) => {
    const slices = used.map((r) => r.windows[name]);
    const calls = slices.reduce((total, slice) => total + slice.calls, 0);
    const seconds = slices.reduce((total, slice) => total + slice.elapsedMs, 0) / 1000;
    const cpu = slices.reduce((total, slice) => total + slice.cpu, 0);
    const latency = summarize(slices.flatMap((slice) => slice.latencies));
    const hops = Object.keys(slices[0]?.cpuByHop ?? {});
    return {
      calls,
      calls_per_second: round(calls / seconds),
      p50_ms: round(latency.p50),
      p99_ms: round(latency.p99),
      /** All of the chain's processes together. */
      cpu_cores: round(cpu / seconds),
      cpu_us_per_call: round((cpu * 1e6) / calls),
      cpu_us_per_call_by_hop: Object.fromEntries(
        hops.map((hop) => [
          hopOf(hop),
          round((slices.reduce((total, slice) => total + slice.cpuByHop[hop]!, 0) * 1e6) / calls),
        ]),
      ),
    };
  };
  const ratio = (a: Setup, b: Setup) => (r: Round<Setup, Slice>) =>
    callsPerSecond(r.windows[a]) / callsPerSecond(r.windows[b]);
  const cpuRatio = (a: Setup, b: Setup) => (r: Round<Setup, Slice>) =>
    cpuPerCall(r.windows[b]) / cpuPerCall(r.windows[a]);
  const vsBaseline = medianOver(used, ratio('secured', 'baseline'));
  return {
    tool: READ_TOOL.name,
    concurrency: plan.concurrency,
    slice_ms: plan.sliceMs,
    rounds: rounds.length,
    rounds_used: used.length,
    rounds_disturbed: disturbed,
    /** False when too few rounds were free of other load: the ratios then mostly measure the noise. */
    reliable,
    secured: chain('secured'),
    baseline: chain('baseline'),
    unsecured: chain('unsecured'),
    two_gateways: chain('two gateways'),
    /** Median over the rounds of secured calls/s ÷ independent baseline calls/s: the headline. */
    ratio_vs_baseline: round(vsBaseline),
    /** Median over the rounds of secured ÷ the bench's own unsecured chain. */
    ratio_vs_unsecured: round(medianOver(used, ratio('secured', 'unsecured'))),
    /** The secured chain with its callers split over two gateways ÷ the baseline, and ÷ one gateway. */
    two_gateways_ratio_vs_baseline: round(medianOver(used, ratio('two gateways', 'baseline'))),
    two_gateways_ratio_vs_one: round(medianOver(used, ratio('two gateways', 'secured'))),
    /** The same by CPU per call (baseline ÷ secured µs): the ratio on dedicated cores. */
    cpu_ratio_vs_baseline: round(medianOver(used, cpuRatio('secured', 'baseline'))),
    cpu_ratio_vs_unsecured: round(medianOver(used, cpuRatio('secured', 'unsecured'))),
    round_ratios_vs_baseline: used.map((r) => round(ratio('secured', 'baseline')(r))),
    other_load_cores: round(median(rounds.flatMap((r) => SETUPS.map((name) => r.windows[name].otherCores)))),
    target_ratio_vs_baseline: target,
    met: vsBaseline >= target,
  };
}
