/**
 * Part 5: cold onboarding of new agents against the secured chain (bench/onboarding.ts), one after
 * another: a few to warm up, then the measured ones. Their tokens are the tool-call callers' tokens.
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

export async function benchOnboarding(secured: Chain, plan: OnboardingPlan, targetP50Ms: number) {
  progress(`onboarding ${plan.warmup} + ${plan.measured} agents`);
  const tokens: string[] = [];
  for (let i = 0; i < plan.warmup; i++) tokens.push((await onboard(secured.mcpUrl)).accessToken);
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
      cpu_ms_per_onboarding: round((window.cpu * 1000) / onboardings.length),
      other_load_cores: round(window.otherCores),
      disturbed: window.disturbed,
      target_p50_ms: targetP50Ms,
      met: totals.p50 <= targetP50Ms,
    },
  };
}
