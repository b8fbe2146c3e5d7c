/**
 * Agent traffic: a population of onboarded agents, each looping without pause until a deadline.
 * Every iteration is a valid call (`tools/list` and `tools/call`, alternating), or with the given
 * shares a fresh onboarding (the agent is replaced by a new one, on a new machine, for a new user,
 * from the first 401 to its first tool result) or a call with a bogus token from the agent's machine.
 * Every event goes to `record` with when it was sent; scenarios judge events by phase.
 */
import { bogusToken, type Era, McpAgent, type McpMethod, onboard, StepError } from './agent.ts';
import { type Addresses, judgeBogus, judgeValid, type Verdict } from './outcomes.ts';
import { pool } from './scenario.ts';
import { LOAD_TEST_DOMAIN } from './stack.ts';

export type EventKind = 'valid' | 'bogus' | 'onboarding';

export interface TrafficEvent {
  kind: EventKind;
  /** Date.now() when it was sent. */
  sentAt: number;
  ms: number;
  verdict: Verdict;
  /** The answer's body or the error, for the first example of a failure. */
  evidence: string | undefined;
}

export interface Population {
  mcpUrl: string;
  machines: Addresses;
  users: { next: number };
}

export const newUser = (population: Population) => `agent-${population.users.next++}@${LOAD_TEST_DOMAIN}`;

/** Half the agents speak the stateless 2026-07-28 protocol, half 2025-11-25. */
export const eraOf = (i: number): Era => (i % 2 === 0 ? '2025-11-25' : '2026-07-28');

/** Onboards `count` agents, each on a machine of its own, `concurrency` at a time. */
export function onboardAgents(population: Population, count: number, concurrency = 16): Promise<McpAgent[]> {
  return pool(Array.from({ length: count }), concurrency, async (_, i) => {
    const onboarded = await onboard(population.mcpUrl, population.machines.next(), newUser(population));
    return new McpAgent(
      onboarded.address,
      population.mcpUrl,
      eraOf(i),
      onboarded.accessToken,
      onboarded.agent,
    );
  });
}

export interface TrafficOptions {
  agents: McpAgent[];
  /** Where fresh onboardings come from. */
  fresh: Population;
  share: { onboarding: number; bogus: number };
  until: () => boolean;
  record(event: TrafficEvent): void;
  /** Pause after a failed event, so an outage is not a busy loop (default 0). */
  pauseAfterFailureMs?: number;
}

async function freshOnboarding(
  fresh: Population,
  era: Era,
): Promise<{ agent?: McpAgent; verdict: Verdict; evidence?: string }> {
  try {
    const onboarded = await onboard(fresh.mcpUrl, fresh.machines.next(), newUser(fresh));
    const agent = new McpAgent(onboarded.address, fresh.mcpUrl, era, onboarded.accessToken, onboarded.agent);
    const outcome = await agent.call('tools/call');
    const first = judgeValid(outcome, 'tools/call');
    if (!first.ok) {
      agent.close();
      return {
        verdict: { ...first, label: `first call ${first.label}` },
        evidence: outcome.answer?.body ?? outcome.error?.message,
      };
    }
    return { agent, verdict: first };
  } catch (error) {
    const label = error instanceof StepError ? `${error.step} ${error.status}` : 'error';
    return { verdict: { ok: false, label }, evidence: (error as Error).message };
  }
}

/** Runs the loops until `until()` says stop; resolves when every loop has finished its last event. */
export async function runTraffic(options: TrafficOptions): Promise<void> {
  const { share, record } = options;
  const pause = options.pauseAfterFailureMs ?? 0;
  async function loop(slot: number): Promise<void> {
    let agent = options.agents[slot]!;
    let turn = slot;
    while (!options.until()) {
      const dice = Math.random();
      const sentAt = Date.now();
      const started = performance.now();
      let verdict: Verdict;
      let evidence: string | undefined;
      let kind: EventKind;
      if (dice < share.onboarding) {
        kind = 'onboarding';
        const fresh = await freshOnboarding(options.fresh, agent.era);
        ({ verdict, evidence } = fresh);
        if (fresh.agent) {
          agent.close();
          agent = fresh.agent;
          options.agents[slot] = agent;
        }
      } else {
        const method: McpMethod = turn++ % 2 === 0 ? 'tools/list' : 'tools/call';
        kind = dice < share.onboarding + share.bogus ? 'bogus' : 'valid';
        const outcome = await agent.call(method, kind === 'bogus' ? bogusToken() : agent.token);
        verdict = kind === 'bogus' ? judgeBogus(outcome) : judgeValid(outcome, method);
        evidence = outcome.answer?.body ?? outcome.error?.message;
      }
      record({ kind, sentAt, ms: performance.now() - started, verdict, evidence });
      if (!verdict.ok && pause > 0) await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
  await Promise.all(options.agents.map((_, slot) => loop(slot)));
}
