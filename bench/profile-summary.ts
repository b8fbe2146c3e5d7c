/**
 * Summarizes the V8 CPU profiles of a `npm run bench -- --profile` run, hop by hop:
 *
 *   node bench/profile-summary.ts <dir> [--kind TEXT]
 *
 * `<dir>` holds one directory per hop (`secured-gateway`, `tokens-sqlite`, ...) with the
 * `.cpuprofile` its process wrote on exit, and `windows.json` (bench/profile-windows.ts): the
 * measured windows, which hops served them, when, and how many calls. For each hop and each kind of
 * window it served, only the samples inside those windows count (not start-up, warm-up or the other
 * chains' windows), so a time divided by the windows' calls is CPU per call. Without windows.json
 * every sample counts and no per-call figure is given. `--kind` keeps the kinds whose name
 * contains TEXT.
 *
 * Printed per hop and kind, as % of busy time (`(idle)` excluded) and µs per call:
 * - inclusive by category: a sample counts for every category on its stack from its innermost frame
 *   up to the innermost application frame (Gatehouse's code, the bench's, the MCP SDK,
 *   oidc-provider/Koa), so a category's time includes what it calls (node:crypto under jose, JSON
 *   under logging, the SQLite store under oidc-provider) but not the handlers it calls back (the
 *   HTTP server does not get the time of the request handlers it dispatches to). The shares
 *   overlap;
 * - self by category: each sample counts once, for its innermost frame that has a category (a
 *   native such as `writev` for the category of its caller); these add up to 100 %;
 * - the functions with the most self time.
 * Only the main thread is sampled: work on the libuv thread pool (part of ES256 verification
 * through WebCrypto) and the system calls it waits for are not in a profile, which is why the bench
 * counts CPU with process.cpuUsage() instead.
 *
 * The .cpuprofile format: `nodes` (id, callFrame {functionName, url, lineNumber}, children ids),
 * `samples` (the node id of each sample's innermost frame), `timeDeltas` (µs from the previous
 * sample; the first from `startTime`). A sample lasts until the next one.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { hopDirName, type ProfileWindow, WINDOWS_FILE } from './profile-windows.ts';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Categories, first match wins: the order puts the specific before the general. */
const CATEGORIES: Array<[name: string, matches: (frame: CallFrame) => boolean]> = [
  ['GC', (f) => f.functionName === '(garbage collector)'],
  ['idle', (f) => f.functionName === '(idle)'],
  ['V8 / native (program)', (f) => f.functionName === '(program)'],
  ['logging', (f) => f.url.includes('/src/shared/logging.ts')],
  [
    'crypto / JWT (jose, node:crypto)',
    (f) =>
      f.url.includes('/node_modules/jose/') ||
      f.url.startsWith('node:crypto') ||
      f.url.startsWith('node:internal/crypto'),
  ],
  [
    'store: SQLite (node:sqlite, Gatehouse adapter)',
    (f) => f.url.startsWith('node:sqlite') || f.url.includes('/src/authorization-server/store/'),
  ],
  ['store: in-memory adapter', (f) => f.url.includes('/oidc-provider/lib/adapters/')],
  ['oidc-provider, Koa', (f) => /\/node_modules\/(oidc-provider|koa[^/]*|@koa\/[^/]+)\//.test(f.url)],
  ['MCP SDK', (f) => f.url.includes('/node_modules/@modelcontextprotocol/')],
  ['zod', (f) => f.url.includes('/node_modules/zod/')],
  ['fetch (undici)', (f) => f.url.startsWith('node:internal/deps/undici')],
  [
    'HTTP (node:http, net, streams)',
    (f) =>
      /^node:(_http_|https?$|internal\/http|net$|internal\/net|stream$|internal\/streams|internal\/stream_base)/.test(
        f.url,
      ) || f.functionName.startsWith('parserOn'),
  ],
  ['JSON', (f) => f.url === '' && (f.functionName === 'parse' || f.functionName === 'stringify')],
  ['Gatehouse (other)', (f) => f.url.includes('/src/')],
  ['bench code (baseline, unsecured chain)', (f) => f.url.includes('/bench/')],
  ['Node.js (other)', (f) => f.url.startsWith('node:')],
  ['other libraries', (f) => f.url.includes('/node_modules/')],
];

export const categoryOf = (frame: CallFrame): string | undefined =>
  CATEGORIES.find(([, matches]) => matches(frame))?.[0];

/** Categories of code that handles requests: the inclusive breakdown stops at their innermost frame. */
const APPLICATION = new Set([
  'Gatehouse (other)',
  'bench code (baseline, unsecured chain)',
  'MCP SDK',
  'oidc-provider, Koa',
]);

/** Per profile node: the categories from it up to the innermost application frame, and its innermost one. */
function stackCategories(profile: CpuProfile) {
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const memo = new Map<number, { all: Set<string>; innermost: string | undefined }>();
  const resolve = (id: number): { all: Set<string>; innermost: string | undefined } => {
    const known = memo.get(id);
    if (known) return known;
    const up = parent.get(id);
    const above = up === undefined ? { all: new Set<string>(), innermost: undefined } : resolve(up);
    const own = categoryOf(byId.get(id)!.callFrame);
    let all = above.all;
    if (own && APPLICATION.has(own)) all = new Set([own]);
    else if (own) all = new Set([...above.all, own]);
    const result = { all, innermost: own ?? above.innermost };
    memo.set(id, result);
    return result;
  };
  return { resolve, byId };
}

export interface Breakdown {
  /** µs of samples taken, idle included, and of busy ones. */
  sampledUs: number;
  busyUs: number;
  inclusiveUs: Map<string, number>;
  selfByCategoryUs: Map<string, number>;
  /** `function url:line` → µs of self time. */
  selfUs: Map<string, number>;
}

export const emptyBreakdown = (): Breakdown => ({
  sampledUs: 0,
  busyUs: 0,
  inclusiveUs: new Map(),
  selfByCategoryUs: new Map(),
  selfUs: new Map(),
});

const add = (map: Map<string, number>, key: string, us: number) => map.set(key, (map.get(key) ?? 0) + us);

function location(frame: CallFrame): string {
  const url = frame.url.replace(/^file:\/\//, '');
  const inModules = url.lastIndexOf('/node_modules/');
  const inRepo = Math.max(url.lastIndexOf('/src/'), url.lastIndexOf('/bench/'), url.lastIndexOf('/test/'));
  const short = inModules >= 0 ? url.slice(inModules + 14) : inRepo >= 0 ? url.slice(inRepo + 1) : url;
  return short ? `${short}:${frame.lineNumber + 1}` : '(native)';
}

/** Adds the samples of `profile` that fall inside `windows` (all of them when undefined) to `into`. */
export function addSamples(
  into: Breakdown,
  profile: CpuProfile,
  windows: ReadonlyArray<{ startUs: number; endUs: number }> | undefined,
): void {
  const { resolve, byId } = stackCategories(profile);
  const times: number[] = new Array(profile.samples.length);
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    times[i] = t;
  }
  const inside = (time: number) => !windows || windows.some((w) => time >= w.startUs && time < w.endUs);
  for (let i = 0; i < profile.samples.length; i++) {
    const time = times[i]!;
    if (!inside(time)) continue;
    const next = i + 1 < times.length ? times[i + 1]! : profile.endTime;
    const us = Math.max(0, next - time);
    const id = profile.samples[i]!;
    const frame = byId.get(id)!.callFrame;
    into.sampledUs += us;
    if (frame.functionName === '(idle)') continue;
    into.busyUs += us;
    const { all, innermost } = resolve(id);
    for (const category of all) add(into.inclusiveUs, category, us);
    add(into.selfByCategoryUs, innermost ?? 'other', us);
    add(into.selfUs, `${frame.functionName || '(anonymous)'}  ${location(frame)}`, us);
  }
}

function pad(cells: Array<string | number>, widths: number[]): string {
  return cells
    .map((cell, i) => (i === 0 ? String(cell).padEnd(widths[i]!) : String(cell).padStart(widths[i]!)))
    .join('  ')
    .trimEnd();
}

const percent = (us: number, of: number) => (of > 0 ? ((100 * us) / of).toFixed(1) : '-');
const perCall = (us: number, calls: number | undefined) => (calls ? (us / calls).toFixed(1) : '-');

/** The printed summary of one hop and kind of window. */
export function formatBreakdown(
  title: string,
  breakdown: Breakdown,
  calls: number | undefined,
  top = 12,
): string {
  const { busyUs, sampledUs } = breakdown;
  if (busyUs === 0) return `${title}: idle (${(sampledUs / 1000).toFixed(0)} ms sampled)`;
  const lines = [
    `${title}: ${(busyUs / 1000).toFixed(0)} ms busy of ${(sampledUs / 1000).toFixed(0)} ms sampled` +
      (calls ? `, ${calls} calls, ${perCall(busyUs, calls)} µs busy per call` : ''),
  ];
  const widths = [46, 7, 12, 7, 12];
  lines.push(`  ${pad(['category', 'incl %', 'incl µs/call', 'self %', 'self µs/call'], widths)}`);
  const categories = [...breakdown.inclusiveUs.entries()].sort((a, b) => b[1] - a[1]);
  for (const [category, us] of categories) {
    const self = breakdown.selfByCategoryUs.get(category) ?? 0;
    lines.push(
      `  ${pad([category, percent(us, busyUs), perCall(us, calls), percent(self, busyUs), perCall(self, calls)], widths)}`,
    );
  }
  const other = breakdown.selfByCategoryUs.get('other');
  if (other) lines.push(`  ${pad(['other', '', '', percent(other, busyUs), perCall(other, calls)], widths)}`);
  lines.push(`  top self time (% of busy, µs/call, function, where):`);
  const functions = [...breakdown.selfUs.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [name, us] of functions) {
    lines.push(`  ${percent(us, busyUs).padStart(6)}  ${perCall(us, calls).padStart(8)}  ${name}`);
  }
  return lines.join('\n');
}

function readProfiles(dir: string): CpuProfile[] {
  return readdirSync(dir)
    .filter((file) => file.endsWith('.cpuprofile'))
    .map((file) => JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as CpuProfile);
}

function readWindows(dir: string): ProfileWindow[] | undefined {
  try {
    return JSON.parse(readFileSync(path.join(dir, WINDOWS_FILE), 'utf8')) as ProfileWindow[];
  } catch {
    return undefined;
  }
}

/** The summary of every hop's profile in `dir`, kind by kind (those `wanted` keeps). */
export function summarizeProfiles(dir: string, wanted: (kind: string) => boolean = () => true): string {
  const windows = readWindows(dir);
  const hopDirs = readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  const sections: string[] = [];
  for (const hopDir of hopDirs) {
    const profiles = readProfiles(path.join(dir, hopDir));
    if (profiles.length === 0) {
      sections.push(`${hopDir}: no profile (the process did not exit cleanly)`);
      continue;
    }
    if (!windows) {
      const breakdown = emptyBreakdown();
      for (const profile of profiles) addSamples(breakdown, profile, undefined);
      sections.push(formatBreakdown(`${hopDir}, whole run`, breakdown, undefined));
      continue;
    }
    const mine = windows.filter((w) => w.hops.some((hop) => hopDirName(hop) === hopDir));
    const kinds = [...new Set(mine.map((w) => w.kind))].filter(wanted);
    for (const kind of kinds) {
      const ofKind = mine.filter((w) => w.kind === kind);
      const breakdown = emptyBreakdown();
      for (const profile of profiles) addSamples(breakdown, profile, ofKind);
      const calls = ofKind.reduce((total, w) => total + w.calls, 0);
      sections.push(formatBreakdown(`${hopDir}, ${kind} (${ofKind.length} windows)`, breakdown, calls));
    }
  }
  return sections.join('\n\n');
}

if (import.meta.main) {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { kind: { type: 'string' } },
  });
  const dir = positionals[0];
  if (!dir) {
    console.error('usage: node bench/profile-summary.ts <profile dir> [--kind TEXT]');
    process.exit(2);
  }
  const kind = values.kind;
  console.log(summarizeProfiles(dir, kind ? (name) => name.includes(kind) : undefined));
}
