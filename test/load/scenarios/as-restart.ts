/**
 * The authorization server killed and restarted under load: fail closed, then recover by itself.
 *
 * 100 agents run the load scenario's traffic (valid calls, 5 % fresh onboardings, 5 % bogus
 * tokens). After 10 s the authorization server gets SIGKILL; 35 s later (longer than the gateway's
 * 30 s introspection cache, so every cached answer lapses meanwhile) it is started again on the same
 * data directory; the traffic goes on for 25 s more. Nothing else is restarted.
 *
 * Judged by when each request (or onboarding) was under way:
 * - ended before the kill: everything succeeds (as in the load scenario);
 * - under way while it was down: fail closed. A valid call is answered from the gateway's cache (a token
 *   checked less than 30 s ago), or refused with 503 and Retry-After (the gateway cannot check the
 *   token), or gets an error result (the MCP server cannot obtain a token for the API). A bogus token
 *   gets 401 or 503 with Retry-After, never a result; no 5xx other than 503 with Retry-After;
 * - after the restart: the last failure comes within 10 s of the server being ready, and the rest
 *   of the run (at least 15 s) has no failure at all: valid calls, onboardings, bogus tokens refused.
 */
import { Addresses, Tally } from '../support/outcomes.ts';
import {
  check,
  type Scenario,
  type ScenarioContext,
  type ScenarioReport,
  sleep,
} from '../support/scenario.ts';
import { APPROVED_DOMAIN, Stack } from '../support/stack.ts';
import { onboardAgents, type Population, runTraffic, type TrafficEvent } from '../support/traffic.ts';
import { failureExamples } from './load.ts';

const AGENTS = 100;
const BEFORE_MS = 10_000;
/** Longer than the gateway's introspection cache (30 s): every cached answer lapses while it is down. */
const DOWN_MS = 35_000;
const AFTER_MS = 25_000;
const RECOVERY_LIMIT_MS = 10_000;

export const scenario: Scenario = {
  name: 'as-restart',
  title: 'the authorization server killed and restarted under load',
  budgetSeconds: 150,
  run,
};

/** A failure that is what failing closed looks like while the authorization server is down. */
function failsClosed(event: TrafficEvent): boolean {
  const { verdict } = event;
  if (event.kind === 'bogus') return verdict.ok;
  if (verdict.ok) return true;
  if (event.kind === 'onboarding') {
    // The agent cannot register or sign in; or it got its token just before and the first call fails closed.
    return !/\b5\d\d\b/.test(verdict.label) || /^first call HTTP 503$/.test(verdict.label);
  }
  return (verdict.status === 503 && verdict.retryAfter === true) || verdict.label === 'error result';
}

/** What a healthy stack answers: valid calls and onboardings succeed, bogus tokens get 401. */
const succeeded = (event: TrafficEvent) =>
  event.kind === 'bogus' ? event.verdict.label === 'HTTP 401' : event.verdict.ok;

async function run({ dir, progress }: ScenarioContext): Promise<ScenarioReport> {
  const stack = new Stack(dir, [APPROVED_DOMAIN]);
  try {
    progress('starting the stack');
    await stack.start();
    const as = stack.components['authorization-server'];
    const users = { next: 0 };
    const population: Population = { mcpUrl: stack.urls.mcpUrl, machines: new Addresses(6), users };
    const fresh: Population = { ...population, machines: new Addresses(7) };
    const agents = await onboardAgents(population, AGENTS);
    progress(
      `${AGENTS} agents onboarded; traffic for ${BEFORE_MS / 1000} s, then SIGKILL to the authorization server`,
    );

    const events: TrafficEvent[] = [];
    let stop = false;
    const traffic = runTraffic({
      agents,
      fresh,
      share: { onboarding: 0.05, bogus: 0.05 },
      until: () => stop,
      record: (event) => events.push(event),
      pauseAfterFailureMs: 200,
    });
    await sleep(BEFORE_MS);
    const killedAt = Date.now();
    await as.stop('SIGKILL');
    progress(`authorization server killed; down for ${DOWN_MS / 1000} s`);
    await sleep(DOWN_MS);
    await as.start();
    const readyAt = Date.now();
    progress(`authorization server ready again (same data directory); traffic for ${AFTER_MS / 1000} s more`);
    await sleep(AFTER_MS);
    stop = true;
    await traffic;
    for (const agent of agents) agent.close();

    const phases = { before: new Tally(), down: new Tally(), after: new Tally() };
    const notClosed = new Tally();
    let lastFailure = 0;
    for (const event of events) {
      const phase = event.sentAt + event.ms < killedAt ? 'before' : event.sentAt < readyAt ? 'down' : 'after';
      phases[phase].add(event.kind, event.verdict.label, event.evidence);
      if (phase === 'down' && !failsClosed(event))
        notClosed.add(event.kind, event.verdict.label, event.evidence);
      if (phase === 'after' && !succeeded(event)) lastFailure = Math.max(lastFailure, event.sentAt);
    }
    const failuresBefore = events.filter(
      (event) => event.sentAt + event.ms < killedAt && !succeeded(event),
    ).length;
    const letThrough = ['before', 'down', 'after'].reduce(
      (total, phase) => total + phases[phase as keyof typeof phases].count('bogus', 'LET THROUGH'),
      0,
    );
    const recoveryMs = Math.max(0, lastFailure - readyAt);
    const tail = events.filter((event) => event.sentAt >= readyAt + RECOVERY_LIMIT_MS);
    const tailFailures = tail.filter((event) => !succeeded(event));
    const show = (tally: Tally) =>
      `valid: ${tally.describe('valid')}; onboardings: ${tally.describe('onboarding')}; bogus: ${tally.describe('bogus')}`;

    return {
      checks: [
        check('before the kill: every request succeeds', failuresBefore === 0, show(phases.before)),
        check(
          'while it is down: fail closed (cached answers, 503 with Retry-After, error results; nothing let through)',
          notClosed.count('valid') + notClosed.count('bogus') + notClosed.count('onboarding') === 0 &&
            letThrough === 0,
          notClosed.counts.size === 0 ? show(phases.down) : `not failing closed: ${show(notClosed)}`,
        ),
        check(
          `recovers by itself: no failure later than ${RECOVERY_LIMIT_MS / 1000} s after it is ready`,
          lastFailure === 0 || recoveryMs <= RECOVERY_LIMIT_MS,
          lastFailure === 0
            ? 'no failure after the restart'
            : `last failure ${(recoveryMs / 1000).toFixed(1)} s after ready`,
        ),
        check(
          `after recovery: every request succeeds (${((AFTER_MS - RECOVERY_LIMIT_MS) / 1000).toFixed(0)} s)`,
          tailFailures.length === 0 && tail.some((event) => event.kind === 'onboarding' && event.verdict.ok),
          `${tail.length} requests, ${tailFailures.length} failed; onboardings ok: ${tail.filter((e) => e.kind === 'onboarding' && e.verdict.ok).length}`,
        ),
      ],
      numbers: [
        [
          'agents; before / down / after',
          `${AGENTS}; ${BEFORE_MS / 1000} s / ${DOWN_MS / 1000} s / ${AFTER_MS / 1000} s`,
        ],
        ['before the kill', show(phases.before)],
        ['while down', show(phases.down)],
        ['after the restart', show(phases.after)],
        ['last failure after ready', lastFailure === 0 ? 'none' : `${(recoveryMs / 1000).toFixed(1)} s`],
      ],
      deviations: stack.deviations,
      notes: failureExamples(notClosed),
    };
  } finally {
    await stack.close();
  }
}
