/** The scenarios of `npm run test:load`, in the order they run. */
import type { Scenario } from '../support/scenario.ts';

export const SCENARIOS: Record<string, () => Promise<Scenario>> = {
  load: async () => (await import('./load.ts')).scenario,
  sigterm: async () => (await import('./sigterm.ts')).scenario,
  'slow-connections': async () => (await import('./slow-connections.ts')).scenario,
  'as-restart': async () => (await import('./as-restart.ts')).scenario,
  kill9: async () => (await import('./kill9.ts')).scenario,
  flood: async () => (await import('./flood.ts')).scenario,
};
