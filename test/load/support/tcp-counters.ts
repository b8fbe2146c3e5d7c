/**
 * The kernel's TCP counters of this network namespace (`/proc/net/netstat`, `/proc/net/snmp`):
 * a refused or slow request that no server logged may have been lost before any server saw it.
 * A full accept queue drops the SYN (ListenOverflows, ListenDrops) and the client only tries again
 * after 1 s, then 2 s more (RFC 6298 §2, the initial RTO): a 3 s timeout then fires with every
 * process idle.
 */
import { readFileSync } from 'node:fs';

const WATCHED = ['TcpExt.ListenOverflows', 'TcpExt.ListenDrops', 'TcpExt.TCPTimeouts', 'Tcp.RetransSegs'];

/** Every counter of the two tables, named `Table.Field`. */
export function readTcpCounters(): Map<string, number> {
  const counters = new Map<string, number>();
  for (const file of ['/proc/net/netstat', '/proc/net/snmp']) {
    let lines: string[];
    try {
      lines = readFileSync(file, 'utf8').trim().split('\n');
    } catch {
      continue;
    }
    // Each table is two lines: "Name: field field ..." then "Name: value value ...".
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = lines[i]!.split(/\s+/);
      const values = lines[i + 1]!.split(/\s+/);
      const table = names[0]!.replace(/:$/, '');
      for (let j = 1; j < names.length; j++) counters.set(`${table}.${names[j]}`, Number(values[j]));
    }
  }
  return counters;
}

/** The watched counters' growth since `before`, as one line for a scenario's table. */
export function describeTcpGrowth(before: Map<string, number>, after = readTcpCounters()): string {
  return WATCHED.map(
    (name) => `${name.split('.')[1]} ${(after.get(name) ?? 0) - (before.get(name) ?? 0)}`,
  ).join(', ');
}
