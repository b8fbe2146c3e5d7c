/**
 * One measured window: the load, the CPU each of the measured processes and this one (the load
 * generator) spent on it, and how busy the rest of the machine was meanwhile.
 *
 * "The rest of the machine" is all CPU time of the machine (`os.cpus()`) minus that of every bench
 * process alive, measured or idle (bench/child.ts keeps the list) and the load generator's: other
 * sessions, builds, test suites; plus the CPU time the hypervisor gave to other machines while this
 * one wanted it (`steal`). A window in which they used more than DISTURBED_OTHER_CORES cores is
 * disturbed: its numbers say more about the neighbours than about the code.
 */
import { liveChildren, type ServerChild } from './child.ts';
import { machineBusySeconds, nowMs, ownCpuSeconds, postgresCpuSeconds, stolenSeconds } from './stats.ts';

/** A window during which other processes used more than this many cores counts as disturbed. */
export const DISTURBED_OTHER_CORES = 0.25;

export interface Measured<T> {
  result: T;
  /** CPU seconds of the measured processes during the window, in all and per process (by name). */
  cpu: number;
  cpuByHop: Record<string, number>;
  /** CPU seconds of the load generator (this process). */
  clientCpu: number;
  /**
   * CPU seconds of the machine's PostgreSQL server meanwhile: the bench's PostgreSQL store works
   * there (a window on another store sees it near idle). Counted as the bench's, never as other load.
   */
  databaseCpu: number;
  /** Cores the other processes of the machine used meanwhile, on average. */
  otherCores: number;
  disturbed: boolean;
  /** When the load ran, in milliseconds of process.hrtime (the clock of V8's CPU profiles too). */
  startedMs: number;
  endedMs: number;
}

async function cpuOf(children: readonly ServerChild[]): Promise<Map<ServerChild, number>> {
  const seconds = await Promise.all(children.map((child) => child.cpuSeconds()));
  return new Map(children.map((child, i) => [child, seconds[i]!]));
}

export async function measured<T extends { elapsedMs: number }>(
  processes: readonly ServerChild[],
  run: () => Promise<T>,
): Promise<Measured<T>> {
  const children = liveChildren();
  const machineSince = nowMs();
  const machineBefore = machineBusySeconds();
  const stolenBefore = stolenSeconds();
  const databaseBefore = postgresCpuSeconds();
  const ownBefore = ownCpuSeconds();
  const before = await cpuOf(children);
  const clientBefore = ownCpuSeconds();
  const startedMs = nowMs();
  const result = await run();
  const endedMs = nowMs();
  const clientCpu = ownCpuSeconds() - clientBefore;
  const after = await cpuOf(children);
  const own = ownCpuSeconds() - ownBefore;
  const machine = machineBusySeconds() - machineBefore;
  const databaseCpu = Math.max(0, postgresCpuSeconds() - databaseBefore);
  const stolen = stolenSeconds() - stolenBefore;
  const machineSeconds = (nowMs() - machineSince) / 1000;

  const used = (child: ServerChild) => after.get(child)! - before.get(child)!;
  // This process's CPU over the machine's interval: the load and the CPU questions on each side.
  const ours = children.reduce((total, child) => total + used(child), own + databaseCpu);
  const cpuByHop = Object.fromEntries(processes.map((child) => [child.name, used(child)]));
  const cpu = processes.reduce((total, child) => total + used(child), 0);
  // Over the machine's interval, which also covers the CPU questions on each side of the load.
  const otherCores = Math.max(0, (machine - ours) / machineSeconds) + stolen / machineSeconds;
  return {
    result,
    cpu,
    cpuByHop,
    clientCpu,
    databaseCpu,
    otherCores,
    disturbed: otherCores > DISTURBED_OTHER_CORES,
    startedMs,
    endedMs,
  };
}
