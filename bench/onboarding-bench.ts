/**
 * Part 5: cold onboarding of new agents against the secured chain (bench/onboarding.ts), one after
 * another: a few to warm up, then the measured ones. It runs after the tool-call parts, so that the
 * agents arrive at a deployment that has been serving tool calls, as in production: a process that
 * has run the tool-call path only once per onboarding runs it with V8's unoptimized code (in a run
 * with onboarding first, the first tool call took 14.6 ms at p50, several times what the same work
 * takes in a process that has served calls). The tool-call callers are agents onboarded before
 * anything is measured (`onboardAgents`).
 */
import type { Chain } from './chains.ts';
import { measured } from './measure.ts';
import { type OnboardingResult, onboard } from './onboarding.ts';
import { noteWindow } from './profile-windows.ts';
import { progress } from './progress.ts';
import { nowMs, round, summarize } from './stats.ts';

export interface OnboardingPlan {
  warmup: number;
  measured: number;
}

/** Onboards `count` agents, unmeasured, and returns their access tokens (the tool-call callers'). */
export async function onboardAgents(secured: Chain, count: number): Promise<string[]> {
  progress(`onboarding ${count} agents to call the tools`);
  const tokens: string[] = [];
  for (let i = 0; i < count; i++) tokens.push((await onboard(secured.mcpUrl)).accessToken);
  return tokens;
}

export async function benchOnboarding(secured: Chain, plan: OnboardingPlan, targetP50Ms: number) {
  progress(`onboarding ${plan.warmup} + ${plan.measured} agents`);
  for (let i = 0; i < plan.warmup; i++) await onboard(secured.mcpUrl);
  const window = await measured(secured.hops, async () => {
    const started = nowMs();
    const results: OnboardingResult[] = [];
    for (let i = 0; i < plan.measured; i++) results.push(await onboard(secured.mcpUrl));
    return Object.assign(results, { elapsedMs: nowMs() - started });
  });
  const onboardings = window.result;
  noteWindow(
    'onboarding',
    secured.hops.map((hop) => hop.name),
    window,
    onboardings.length,
  );
  const totals = summarize(onboardings.map((o) => o.totalMs));
  const phase = (name: keyof OnboardingResult['phases']) =>
    round(summarize(onboardings.map((o) => o.phases[name])).p50);
  return {
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
      cpu_ms_per_onboarding: round((window.cpu * 1000) / onboardings.length),
      other_load_cores: round(window.otherCores),
      disturbed: window.disturbed,
      target_p50_ms: targetP50Ms,
      met: totals.p50 <= targetP50Ms,
    },
  };
}
