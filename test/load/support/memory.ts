/**
 * Memory of the server processes: VmRSS from /proc/<pid>/status, every second, and the rule that
 * says whether it stayed flat.
 *
 * The rule ("flat after warm-up"): split the samples of a run into thirds by time; the first third
 * is warm-up (JIT, caches filling, heap growing to its working size); the median of the last third
 * must be at most 15 % above the median of the middle third. A leak grows steadily and fails it; a
 * heap that settles passes it whatever its size.
 */
import { readFileSync } from 'node:fs';

export const FLAT_TOLERANCE = 0.15;

export interface RssSample {
  /** Milliseconds since the sampler started. */
  t: number;
  /** Resident set size in KiB. */
  kib: number;
}

/** VmRSS of a process in KiB, or undefined when it is gone. */
export function rssKib(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface Flatness {
  middleMib: number;
  lastMib: number;
  maxMib: number;
  /** last ÷ middle - 1. */
  growth: number;
  flat: boolean;
}

export function flatness(samples: readonly RssSample[]): Flatness {
  const mib = (kib: number) => Math.round((kib / 1024) * 10) / 10;
  if (samples.length < 3) {
    return {
      middleMib: Number.NaN,
      lastMib: Number.NaN,
      maxMib: Number.NaN,
      growth: Number.NaN,
      flat: false,
    };
  }
  const start = samples[0]!.t;
  const span = samples.at(-1)!.t - start;
  const third = (i: number) =>
    samples
      .filter((s) => s.t - start >= (span * i) / 3 && (i === 2 || s.t - start < (span * (i + 1)) / 3))
      .map((s) => s.kib);
  const middle = median(third(1));
  const last = median(third(2));
  const growth = last / middle - 1;
  return {
    middleMib: mib(middle),
    lastMib: mib(last),
    maxMib: mib(Math.max(...samples.map((s) => s.kib))),
    growth: Math.round(growth * 1000) / 1000,
    flat: growth <= FLAT_TOLERANCE,
  };
}

/** Samples the RSS of the processes `pids()` names, every `intervalMs`, until stopped. */
export class RssSampler<Name extends string> {
  readonly samples = new Map<Name, RssSample[]>();
  private timer: NodeJS.Timeout | undefined;
  private readonly started = Date.now();
  private readonly pids: () => Partial<Record<Name, number>>;
  private readonly intervalMs: number;

  constructor(pids: () => Partial<Record<Name, number>>, intervalMs = 1000) {
    this.pids = pids;
    this.intervalMs = intervalMs;
  }

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    return this;
  }

  private sample(): void {
    const t = Date.now() - this.started;
    for (const [name, pid] of Object.entries(this.pids()) as Array<[Name, number]>) {
      const kib = rssKib(pid);
      if (kib === undefined) continue;
      let list = this.samples.get(name);
      if (!list) {
        list = [];
        this.samples.set(name, list);
      }
      list.push({ t, kib });
    }
  }

  /** Samples of `name` taken within [fromMs, toMs) of the sampler's start. */
  between(name: Name, fromMs: number, toMs = Number.POSITIVE_INFINITY): RssSample[] {
    return (this.samples.get(name) ?? []).filter((s) => s.t >= fromMs && s.t < toMs);
  }

  /** Milliseconds since the sampler started. */
  now(): number {
    return Date.now() - this.started;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
