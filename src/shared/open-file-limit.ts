/**
 * The process's open-file limit (RLIMIT_NOFILE), and the share of it that inbound connections may
 * take. Every accepted connection is a file descriptor; when the process runs out, accept() fails
 * with EMFILE and nobody is served. Capping connections below the limit keeps a descriptor free for
 * accepting (and then evicting or refusing), for upstream sockets, the database and files.
 */
import { readFileSync } from 'node:fs';

/** The soft "Max open files" of a /proc/<pid>/limits text; undefined when absent or unlimited. */
export function parseOpenFileLimit(limits: string): number | undefined {
  const line = limits.split('\n').find((candidate) => candidate.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  if (!soft || !/^\d+$/.test(soft)) return undefined;
  return Number(soft);
}

/**
 * This process's soft open-file limit, read from /proc/self/limits (Linux). Node raises the soft
 * limit to the hard one at start, so this is what the process really has. Undefined where there is
 * no /proc (macOS, Windows) or no limit.
 */
export function openFileLimit(
  read: () => string = () => readFileSync('/proc/self/limits', 'utf8'),
): number | undefined {
  try {
    return parseOpenFileLimit(read());
  } catch {
    return undefined;
  }
}

/**
 * How many inbound connections all listeners of one process may hold together: half the open-file
 * limit, so the other half stays free for upstream connections, the database, log and key files.
 * Without a known limit, only the configured caps apply.
 */
export function processConnectionBudget(limit: number | undefined): number {
  if (limit === undefined) return Number.POSITIVE_INFINITY;
  return Math.max(1, Math.floor(limit / 2));
}
