/**
 * `npm run test:load [-- --scenario NAME[,NAME...]] [--keep]`: faults and load against real
 * `gatehouse serve` processes with production defaults (docs/performance.md, "Faults and load").
 *
 * Each scenario runs in a network namespace of its own (`ip netns add`, loopback only), so the
 * built-in ports never collide and several runs can coexist; the servers run with an open-file
 * limit of 4,096. Needs root (network namespaces) and `ip` and `prlimit` (iproute2, util-linux).
 * Progress lines while it runs; at the end a table of every promise and the numbers measured.
 * Exits 1 when a promise failed (naming it), 2 when it cannot run here.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SCENARIOS } from './scenarios/index.ts';
import type { ScenarioResult } from './support/scenario.ts';

const ENTRY = path.resolve(import.meta.dirname, 'scenario-process.ts');

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', multiple: true },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

const names = (values.scenario ?? Object.keys(SCENARIOS)).flatMap((value) => value.split(','));
if (values.help) {
  console.log(`usage: npm run test:load [-- --scenario ${Object.keys(SCENARIOS).join('|')}] [--keep]`);
  process.exit(0);
}
const unknown = names.filter((name) => !SCENARIOS[name]);
if (unknown.length > 0) {
  console.error(
    `test:load: unknown scenario ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(', ')}`,
  );
  process.exit(2);
}

function cannotRun(reason: string): never {
  console.error(`test:load: cannot run here: ${reason}`);
  process.exit(2);
}

if (process.platform !== 'linux') cannotRun('it needs Linux network namespaces');
if (process.getuid?.() !== 0)
  cannotRun('it needs root, to create a network namespace per scenario (ip netns)');
for (const [tool, flag] of [
  ['ip', '-V'],
  ['prlimit', '--version'],
]) {
  try {
    execFileSync(tool!, [flag!], { stdio: 'ignore' });
  } catch {
    cannotRun(`\`${tool}\` is missing (apt-get install iproute2 util-linux)`);
  }
}

const log = (line: string) => process.stderr.write(`test:load: ${line}\n`);

/** A network namespace with only a loopback interface, up. */
function createNamespace(name: string): void {
  execFileSync('ip', ['netns', 'add', name]);
  execFileSync('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
}

function deleteNamespace(name: string): void {
  try {
    execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
  } catch {
    // Already gone.
  }
}

/** The scenario running now: its process group and namespace, so an interrupt can clean up. */
let current: { pid: number; namespace: string } | undefined;

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    // The scenario runs in a process group of its own (it does not get the terminal's signal):
    // stop it and every server it started, by the group's id.
    if (current) {
      try {
        process.kill(-current.pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
      deleteNamespace(current.namespace);
    }
    log(`${signal}: stopped`);
    process.exit(130);
  });
}

async function runScenario(name: string, root: string): Promise<ScenarioResult> {
  const scenario = await SCENARIOS[name]!();
  const dir = path.join(root, name);
  mkdirSync(dir, { recursive: true });
  const resultFile = path.join(dir, 'result.json');
  const namespace = `gatehouse-load-${process.pid}-${name}`;
  createNamespace(namespace);
  const started = Date.now();
  try {
    // Its own process group (detached), so a scenario past its deadline is stopped with every
    // server it started, by the group's id.
    const child = spawn('ip', ['netns', 'exec', namespace, process.execPath, ENTRY, name, dir, resultFile], {
      stdio: ['ignore', 'inherit', 'inherit'],
      detached: true,
    });
    current = { pid: child.pid!, namespace };
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const deadline = setTimeout(
      () => {
        log(`${name}: still running after ${scenario.budgetSeconds + 60} s: stopping it`);
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // Gone meanwhile.
        }
      },
      (scenario.budgetSeconds + 60) * 1000,
    );
    const code = await exited;
    clearTimeout(deadline);
    if (!existsSync(resultFile)) {
      return {
        scenario: name,
        title: scenario.title,
        dir,
        seconds: Math.round((Date.now() - started) / 1000),
        checks: [
          { promise: 'the scenario ran to its end', ok: false, detail: `exited ${code} without a result` },
        ],
        numbers: [],
        deviations: [],
      };
    }
    return JSON.parse(readFileSync(resultFile, 'utf8')) as ScenarioResult;
  } finally {
    current = undefined;
    deleteNamespace(namespace);
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length)));
  return rows
    .map((row) =>
      row
        .map((cell, c) => cell.padEnd(widths[c]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

async function main(): Promise<number> {
  const root = mkdtempSync(path.join(tmpdir(), 'gatehouse-load-'));
  const started = Date.now();
  log(`${names.length} scenario(s): ${names.join(', ')}; runs in ${root}`);
  const results: ScenarioResult[] = [];
  for (const name of names) {
    log(`--- ${name}`);
    const result = await runScenario(name, root);
    results.push(result);
    const failed = result.checks.filter((c) => !c.ok).length;
    log(
      `--- ${name}: ${failed === 0 ? 'every promise held' : `${failed} promise(s) FAILED`} (${result.seconds} s)`,
    );
  }

  const out: string[] = [
    '',
    `Gatehouse faults and load, ${new Date().toISOString()}, ${Math.round((Date.now() - started) / 1000)} s`,
  ];
  for (const result of results) {
    out.push('', `${result.scenario}: ${result.title} (${result.seconds} s)`);
    out.push(
      table([
        ['', 'promise', 'evidence'],
        ...result.checks.map((c) => [c.ok ? 'PASS' : 'FAIL', c.promise, c.detail]),
      ]),
    );
    if (result.numbers.length > 0) {
      out.push(table(result.numbers.map(([what, value]) => ['  ', what, String(value)])));
    }
    for (const deviation of result.deviations) {
      out.push(
        `  setting changed: ${deviation.setting} = ${JSON.stringify(deviation.value)} (${deviation.why})`,
      );
    }
    for (const note of result.notes ?? []) out.push(`  note: ${note}`);
  }
  const failures = results.flatMap((r) =>
    r.checks.filter((c) => !c.ok).map((c) => `${r.scenario}: ${c.promise}`),
  );
  out.push('');
  if (failures.length > 0) {
    out.push(`FAILED (${failures.length}):`, ...failures.map((f) => `  ${f}`));
    out.push(`Configuration, data and logs of every run: ${root}`);
  } else {
    out.push(`Every promise held (${results.length} scenario(s)).`);
  }
  console.log(out.join('\n'));
  if (failures.length === 0 && !values.keep) rmSync(root, { recursive: true, force: true });
  else if (failures.length === 0) console.log(`Kept: ${root}`);
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`test:load: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  },
);
