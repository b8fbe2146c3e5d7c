/**
 * Flood: 100,000 distinct bogus tokens against the gateway: bounded memory, the authorization
 * server stays up, and far fewer introspections than bogus requests.
 *
 * Four attacker machines (addresses) send `tools/call` requests, each with a token never seen
 * before (43 base64url characters, shaped like a real one), up to 64 in flight per address, paced to
 * spread the 100,000 over 60 s (and stopped at 120 s whatever was sent). Meanwhile ten agents on machines of their own keep
 * calling tools with their valid tokens.
 *
 * Measured: every answer's status (a bogus token must never get a result); the RSS of the gateway
 * and the authorization server every second; the introspections the authorization server answered
 * for the gateway, counted from the gateway's request log (a request whose token was looked up
 * there and found inactive is logged `cache: miss`, `bearer: inactive`).
 *
 * Promises: nothing let through; both processes stay up; bounded memory (no growth through the
 * flood by the rule of support/memory.ts: the last third's median RSS within 15 % of the middle
 * third's, although the inactive-answer cache is full after the first 10,000 tokens; and the peak
 * under 1 GiB); introspections at most 10 % of the bogus requests; the agents' valid calls keep
 * succeeding.
 */
import { bogusToken, mcpHeaders, rpcBody } from '../support/agent.ts';
import { keepAliveAgent, request, settle } from '../support/http.ts';
import { flatness, median, RssSampler } from '../support/memory.ts';
import { Addresses, judgeBogus, Tally } from '../support/outcomes.ts';
import {
  check,
  mib,
  type Scenario,
  type ScenarioContext,
  type ScenarioReport,
  sleep,
} from '../support/scenario.ts';
import { APPROVED_DOMAIN, type ComponentName, Stack } from '../support/stack.ts';
import { onboardAgents, type Population, runTraffic } from '../support/traffic.ts';
import { failureExamples } from './load.ts';

const TOKENS = 100_000;
const ATTACKERS = ['127.77.0.1', '127.77.0.2', '127.77.0.3', '127.77.0.4'];
const IN_FLIGHT_PER_ADDRESS = 64;
/** The tokens are spread over this time (about 1,700 a second), so memory is judged at a steady rate. */
const PACE_MS = 60_000;
const LIMIT_MS = 120_000;
const AGENTS = 10;
const MAX_INTROSPECTION_SHARE = 0.1;
/** A ceiling for the peak RSS of each process, far above what a bounded process needs. */
const CEILING_MIB = 1024;
const WATCHED: ComponentName[] = ['gateway', 'authorization-server'];

export const scenario: Scenario = {
  name: 'flood',
  title: `${TOKENS.toLocaleString('en')} distinct bogus tokens against the gateway`,
  budgetSeconds: 200,
  run,
};

async function run({ dir, progress }: ScenarioContext): Promise<ScenarioReport> {
  const stack = new Stack(dir, [APPROVED_DOMAIN]);
  try {
    progress('starting the stack');
    await stack.start();
    const gateway = stack.components.gateway;
    // Introspections of tokens found inactive: the bogus ones (the agents' valid tokens are looked
    // up again every 30 s too, and are logged `phantom`).
    let introspected = 0;
    let requestLines = 0;
    gateway.onLine((line) => {
      if (!line.includes('"message":"request"')) return;
      requestLines += 1;
      if (line.includes('"cache":"miss"') && line.includes('"bearer":"inactive"')) introspected += 1;
    });
    const sampler = new RssSampler(() => stack.pids()).start();
    const population: Population = {
      mcpUrl: stack.urls.mcpUrl,
      machines: new Addresses(10),
      users: { next: 0 },
    };
    const agents = await onboardAgents(population, AGENTS);
    const legit = new Tally();
    let stopLegit = false;
    const legitTraffic = runTraffic({
      agents,
      fresh: { ...population, machines: new Addresses(11) },
      share: { onboarding: 0, bogus: 0 },
      until: () => stopLegit,
      record: (event) => legit.add('valid', event.verdict.label, event.evidence),
    });
    await sleep(5000);
    const baselineEnd = sampler.now();
    const introspectedBefore = introspected;

    progress(
      `flooding: ${TOKENS.toLocaleString('en')} bogus tokens from ${ATTACKERS.length} addresses, ${IN_FLIGHT_PER_ADDRESS} in flight each`,
    );
    const tally = new Tally();
    const floodStarted = Date.now();
    const deadline = floodStarted + LIMIT_MS;
    let sent = 0;
    const ticker = setInterval(() => {
      const rss = WATCHED.map(
        (name) => `${name} ${mib(sampler.samples.get(name)?.at(-1)?.kib ?? 0)} MiB`,
      ).join(', ');
      progress(
        `flood: ${sent} sent, ${introspected - introspectedBefore} introspections; ${tally.describe('bogus')}; RSS ${rss}`,
      );
    }, 10_000);
    await Promise.all(
      ATTACKERS.map(async (address) => {
        const agent = keepAliveAgent(address, IN_FLIGHT_PER_ADDRESS);
        await Promise.all(
          Array.from({ length: IN_FLIGHT_PER_ADDRESS }, async () => {
            while (sent < TOKENS && Date.now() < deadline) {
              // Ahead of the pace: wait for it.
              const due = floodStarted + (sent / TOKENS) * PACE_MS;
              if (due > Date.now()) await sleep(due - Date.now());
              if (sent >= TOKENS) break;
              sent += 1;
              const outcome = await settle(
                request(stack.urls.mcpUrl, {
                  method: 'POST',
                  headers: mcpHeaders('2025-11-25', bogusToken()),
                  body: rpcBody('2025-11-25', 'tools/call'),
                  agent,
                }),
              );
              const verdict = judgeBogus(outcome);
              tally.add('bogus', verdict.label, outcome.answer?.body ?? outcome.error?.message);
            }
          }),
        );
        agent.destroy();
      }),
    );
    clearInterval(ticker);
    const floodSeconds = (Date.now() - floodStarted) / 1000;
    const floodEnd = sampler.now();
    await sleep(2000);
    stopLegit = true;
    await legitTraffic;
    for (const agent of agents) agent.close();
    sampler.stop();

    const introspections = introspected - introspectedBefore;
    const share = introspections / sent;
    const memory = WATCHED.map((name) => {
      const before = median(sampler.between(name, 0, baselineEnd).map((s) => s.kib));
      const during = sampler.between(name, baselineEnd, floodEnd);
      const peak = Math.max(...during.map((s) => s.kib));
      return { name, before, peak, ...flatness(during) };
    });
    const down = WATCHED.filter((name) => !stack.components[name].running);
    const letThrough = tally.count('bogus', 'LET THROUGH');
    const legitFailures = legit.count('valid') - legit.count('valid', 'ok');
    return {
      checks: [
        check(
          '0 requests let through without a valid token',
          letThrough === 0,
          `bogus tokens: ${tally.describe('bogus')}`,
        ),
        check(
          'the gateway and the authorization server stay up',
          down.length === 0,
          down.length === 0 ? 'both up' : `down: ${down.join(', ')}`,
        ),
        check(
          `bounded memory (no growth through the flood, peak under ${CEILING_MIB} MiB)`,
          memory.every((m) => m.flat && mib(m.peak) < CEILING_MIB),
          memory
            .map(
              (m) =>
                `${m.name} middle→last third ${m.middleMib}→${m.lastMib} MiB (${(m.growth * 100).toFixed(1)} %), peak ${mib(m.peak)}`,
            )
            .join('; '),
        ),
        check(
          `introspections clearly fewer than bogus requests (at most ${MAX_INTROSPECTION_SHARE * 100} %)`,
          share <= MAX_INTROSPECTION_SHARE,
          `${introspections} introspections for ${sent} bogus requests (${(share * 100).toFixed(2)} %)`,
        ),
        check(
          'valid calls from other machines keep succeeding',
          legitFailures === 0,
          `valid calls: ${legit.describe('valid')}`,
        ),
      ],
      numbers: [
        [
          'bogus requests sent, time',
          `${sent} in ${floodSeconds.toFixed(1)} s (${Math.round(sent / floodSeconds)}/s)`,
        ],
        ['answers', tally.describe('bogus')],
        [
          'introspections answered by the authorization server (gateway log)',
          `${introspections} (${(share * 100).toFixed(2)} % of the bogus requests)`,
        ],
        ['gateway request log lines', requestLines],
        ...memory.map((m): [string, string] => [
          `RSS ${m.name}: before → peak (middle → last third)`,
          `${mib(m.before)} → ${mib(m.peak)} MiB (${m.middleMib} → ${m.lastMib})`,
        ]),
        ['valid calls of 10 agents meanwhile', legit.describe('valid')],
      ],
      deviations: stack.deviations,
      notes: failureExamples(tally),
    };
  } finally {
    await stack.close();
  }
}
