/** Small statistics and timing helpers for the benchmark. */
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

/** Milliseconds since an arbitrary origin, with sub-microsecond resolution. */
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** The p-th percentile (0–100) by the nearest-rank method; NaN for no samples. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(samples: readonly number[]): LatencySummary {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((total, value) => total + value, 0);
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? Number.NaN,
    mean: sorted.length > 0 ? sum / sorted.length : Number.NaN,
  };
}

/** Rounds for the report: 2 decimals under 10, 1 under 100, else whole numbers. */
export function round(value: number): number {
  if (!Number.isFinite(value)) return value;
  const digits = Math.abs(value) < 10 ? 100 : Math.abs(value) < 100 ? 10 : 1;
  return Math.round(value * digits) / digits;
}

/** CPU seconds the whole machine has spent busy (every core, every process) since boot. */
export function machineBusySeconds(): number {
  let busyMs = 0;
  for (const cpu of os.cpus()) {
    const { user, nice, sys, irq } = cpu.times;
    busyMs += user + nice + sys + irq;
  }
  return busyMs / 1000;
}

/**
 * Seconds of CPU the hypervisor gave to others while this VM's CPUs wanted to run (Linux's `steal`
 * column of /proc/stat, in USER_HZ ticks of 1/100 s); 0 where there is no such file. On a shared
 * host this is other load as much as a neighbour process is, and `os.cpus()` does not count it.
 */
export function stolenSeconds(): number {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
    const steal = Number(fields[8]);
    return Number.isFinite(steal) ? steal / 100 : 0;
  } catch {
    return 0;
  }
}

/**
 * CPU seconds (user + system) of the machine's PostgreSQL server processes alive now (comm
 * `postgres`, from /proc/<pid>/stat, in USER_HZ ticks of 1/100 s); 0 where there is no /proc. The
 * bench's PostgreSQL store runs there: its work is part of what a token costs, not other load.
 */
export function postgresCpuSeconds(): number {
  let ticks = 0;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return 0;
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      if (stat.slice(stat.indexOf('(') + 1, close) !== 'postgres') continue;
      // Fields after the command: state is the 3rd field, utime the 14th and stime the 15th.
      const fields = stat.slice(close + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process ended meanwhile.
    }
  }
  return ticks / 100;
}

/** CPU seconds (user + system, all threads) of this process. */
export function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/** The middle value (the mean of the two middle ones for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
