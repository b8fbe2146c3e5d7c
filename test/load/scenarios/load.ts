/**
 * Load: 200 concurrent agents for 60 s through the gateway, every default rate limit on.
 *
 * Each agent is a machine of its own (its own loopback address), onboarded first (discovery, DCR,
 * sign-in with a one-time code, consent, token). Then each loops without pause (support/traffic.ts);
 * every iteration is
 *
 *   90 %  a valid call with its token: `tools/list` or `tools/call` (get_stock, list_stocks),
 *         alternating; half the agents speak 2025-11-25, half 2026-07-28;
 *    5 %  a fresh onboarding: the agent is replaced by a new one, on a new machine (address), for a
 *         new user, from the first 401 to its first tool result;
 *    5 %  a call with a bogus token (43 base64url characters, like a real one) from its machine.
 *
 * The traffic runs 40 s of warm-up, then the 60 s measured window. Promises, over the whole run:
 * 0 5xx; 0 refused valid calls (no valid call or onboarding refused or failed); 0 requests let
 * through without a valid token; and over the measured window, flat memory after warm-up
 * (support/memory.ts: the last third's median RSS within 15 % of the middle third's) for every
 * server process.
 */
import { flatness, RssSampler } from '../support/memory.ts';
import { Addresses, Tally } from '../support/outcomes.ts';
import {
  check,
  percentile,
  type Scenario,
  type ScenarioContext,
  type ScenarioReport,
} from '../support/scenario.ts';
import { APPROVED_DOMAIN, COMPONENTS, Stack } from '../support/stack.ts';
import { onboardAgents, type Population, runTraffic } from '../support/traffic.ts';

const AGENTS = 200;
const DURATION_MS = 60_000;
/**
 * The same traffic before the measured window, while the heaps grow to their working size: the
 * authorization server's RSS settles after about a minute of it (a 180 s run: 397 MiB at 66 s,
 * 401 MiB at 166 s, while 3,000 more agents onboarded), so 40 s here and 20 s of the window.
 */
const WARMUP_MS = 40_000;
const SHARE = { onboarding: 0.05, bogus: 0.05 };

export const scenario: Scenario = {
  name: 'load',
  title: `${AGENTS} concurrent agents for ${DURATION_MS / 1000} s, every default rate limit on`,
  budgetSeconds: 200,
  run,
};

async function run({ dir, progress }: ScenarioContext): Promise<ScenarioReport> {
  const stack = new Stack(dir, [APPROVED_DOMAIN]);
  const tally = new Tally();
  try {
    progress('starting the stack (4 processes, open-file limit 4,096)');
    await stack.start();
    const sampler = new RssSampler(() => stack.pids()).start();
    const users = { next: 0 };
    const population: Population = { mcpUrl: stack.urls.mcpUrl, machines: new Addresses(1), users };
    const fresh: Population = { ...population, machines: new Addresses(2) };

    progress(`onboarding ${AGENTS} agents, one machine (loopback address) and one user each`);
    const setupStarted = Date.now();
    const agents = await onboardAgents(population, AGENTS);
    const setupSeconds = (Date.now() - setupStarted) / 1000;
    progress(
      `onboarded ${AGENTS} agents in ${setupSeconds.toFixed(1)} s; ${WARMUP_MS / 1000} s warm-up, then ${DURATION_MS / 1000} s measured`,
    );

    const latencies: number[] = [];
    const onboardingMs: number[] = [];
    const measuredFrom = Date.now() + WARMUP_MS;
    const deadline = measuredFrom + DURATION_MS;
    const windowStart = sampler.now() + WARMUP_MS;

    const ticker = setInterval(() => {
      const rss = COMPONENTS.map((name) => {
        const last = sampler.samples.get(name)?.at(-1);
        return `${name} ${last ? Math.round(last.kib / 1024) : '?'} MiB`;
      }).join(', ');
      progress(
        `${Date.now() < measuredFrom ? 'warm-up: ' : ''}valid ${tally.count('valid', 'ok')}/${tally.count('valid')} ok, ` +
          `onboardings ${tally.count('onboarding', 'ok')}/${tally.count('onboarding')}, bogus ${tally.count('bogus')}; RSS ${rss}`,
      );
    }, 10_000);
    await runTraffic({
      agents,
      fresh,
      share: SHARE,
      until: () => Date.now() >= deadline,
      record(event) {
        tally.add(event.kind, event.verdict.label, event.evidence);
        if (!event.verdict.ok || event.sentAt < measuredFrom) return;
        if (event.kind === 'valid') latencies.push(event.ms);
        if (event.kind === 'onboarding') onboardingMs.push(event.ms);
      },
    });
    clearInterval(ticker);
    const windowEnd = sampler.now();
    sampler.stop();
    for (const agent of agents) agent.close();

    const memory = COMPONENTS.map((name) => ({
      name,
      ...flatness(sampler.between(name, windowStart, windowEnd)),
    }));
    const seconds = (windowEnd - windowStart) / 1000;
    const fiveXx = ['valid', 'bogus', 'onboarding'].reduce(
      (total, kind) => total + tally.countWhere(kind, (label) => /\b5\d\d\b/.test(label)),
      0,
    );
    const validFailures = tally.count('valid') - tally.count('valid', 'ok');
    const onboardingFailures = tally.count('onboarding') - tally.count('onboarding', 'ok');
    const letThrough = tally.count('bogus', 'LET THROUGH');
    const requests = tally.count('valid') + tally.count('bogus');
    const total = seconds + WARMUP_MS / 1000;

    return {
      checks: [
        check('0 5xx', fiveXx === 0, `${fiveXx} answers with a 5xx status`),
        check(
          '0 refused valid calls',
          validFailures === 0 && onboardingFailures === 0,
          `valid calls: ${tally.describe('valid')}; fresh onboardings: ${tally.describe('onboarding')}`,
        ),
        check(
          '0 requests let through without a valid token',
          letThrough === 0,
          `bogus tokens: ${tally.describe('bogus')}`,
        ),
        check(
          'flat memory after warm-up',
          memory.every((m) => m.flat),
          memory
            .map((m) => `${m.name} ${m.middleMib}→${m.lastMib} MiB (${(m.growth * 100).toFixed(1)} %)`)
            .join(', '),
        ),
      ],
      numbers: [
        [
          'agents (concurrent), duration',
          `${AGENTS}, ${WARMUP_MS / 1000} s warm-up + ${seconds.toFixed(1)} s measured`,
        ],
        [`initial onboarding of ${AGENTS} agents`, `${setupSeconds.toFixed(1)} s`],
        ['MCP requests (valid + bogus), whole run', `${requests} (${Math.round(requests / total)}/s)`],
        ['valid calls ok / sent', `${tally.count('valid', 'ok')} / ${tally.count('valid')}`],
        [
          'valid call latency p50 / p99 / max (measured window)',
          `${percentile(latencies, 50)} / ${percentile(latencies, 99)} / ${percentile(latencies, 100)} ms`,
        ],
        [
          'fresh onboardings ok / started',
          `${tally.count('onboarding', 'ok')} / ${tally.count('onboarding')}`,
        ],
        [
          'onboarding, first 401 → first result, p50 / p99',
          `${percentile(onboardingMs, 50)} / ${percentile(onboardingMs, 99)} ms`,
        ],
        ['bogus-token requests', `${tally.count('bogus')}: ${tally.describe('bogus')}`],
        ...memory.map((m): [string, string] => [
          `RSS ${m.name}: middle → last third median (max)`,
          `${m.middleMib} → ${m.lastMib} MiB, ${(m.growth * 100).toFixed(1)} % (${m.maxMib})`,
        ]),
      ],
      deviations: stack.deviations,
      notes: failureExamples(tally),
    };
  } finally {
    await stack.close();
  }
}

/** The first answer of each kind of failure, as evidence. */
export function failureExamples(tally: Tally): string[] {
  return [...tally.examples]
    .filter(([key]) => !/: (ok|HTTP 401|HTTP 429 with Retry-After)$/.test(key))
    .slice(0, 6)
    .map(([key, example]) => `first ${key}: ${example.replace(/\s+/g, ' ')}`);
}
