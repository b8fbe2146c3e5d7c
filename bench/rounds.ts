/**
 * Interleaved rounds: every round measures one short window of each contender, in an order that
 * rotates from round to round (ABC, BCA, CAB, ...), so that drift (the JIT settling, a neighbour's
 * build starting, the CPU's clock) hits every contender alike and none always runs first or right
 * after another. Ratios are taken round by round, between windows a few seconds apart.
 *
 * Rounds go on past `minRounds` (up to `maxRounds`) while fewer than `minUndisturbed` of them were
 * free of other load on the machine. The rounds used for the results are the undisturbed ones when
 * there are enough of them, else all of them, and then the results are not reliable.
 */
import { median } from './stats.ts';

export interface RoundPlan {
  minRounds: number;
  maxRounds: number;
  minUndisturbed: number;
}

export interface Round<K extends string, W> {
  /** 0-based. */
  index: number;
  order: K[];
  windows: Record<K, W>;
  /** True when any of its windows was disturbed. */
  disturbed: boolean;
}

/** `items` rotated left by `round` places: ABC, BCA, CAB, ABC, ... */
export function rotated<T>(items: readonly T[], round: number): T[] {
  const shift = ((round % items.length) + items.length) % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

export async function runRounds<K extends string, W extends { disturbed: boolean }>(
  names: readonly K[],
  plan: RoundPlan,
  measure: (name: K, round: number) => Promise<W>,
  onRound: (round: Round<K, W>) => void = () => {},
): Promise<Array<Round<K, W>>> {
  const rounds: Array<Round<K, W>> = [];
  const undisturbed = () => rounds.filter((round) => !round.disturbed).length;
  for (let index = 0; index < plan.maxRounds; index++) {
    if (index >= plan.minRounds && undisturbed() >= plan.minUndisturbed) break;
    const order = rotated(names, index);
    const windows: Partial<Record<K, W>> = {};
    for (const name of order) windows[name] = await measure(name, index);
    const complete = windows as Record<K, W>;
    const round = {
      index,
      order,
      windows: complete,
      disturbed: order.some((name) => complete[name].disturbed),
    };
    rounds.push(round);
    onRound(round);
  }
  return rounds;
}

export interface UsedRounds<R> {
  used: R[];
  /** False when too few rounds were free of other load: the results then mostly measure the noise. */
  reliable: boolean;
  disturbed: number;
}

export function usableRounds<R extends { disturbed: boolean }>(
  rounds: readonly R[],
  minUndisturbed: number,
): UsedRounds<R> {
  const clean = rounds.filter((round) => !round.disturbed);
  const reliable = clean.length >= minUndisturbed;
  return { used: reliable ? clean : [...rounds], reliable, disturbed: rounds.length - clean.length };
}

/** The median over rounds of a per-round value (a ratio of two of its windows, say). */
export const medianOver = <R>(rounds: readonly R[], value: (round: R) => number) => median(rounds.map(value));
