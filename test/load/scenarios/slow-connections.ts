/**
 * Slow connections: slowloris and slow bodies against servers with 4,096 open files; legitimate
 * requests keep succeeding.
 *
 * Every server runs with an open-file limit of 4,096, so it holds at most 2,048 client connections
 * (half the limit, src/shared/open-file-limit.ts). Against each public listener, the gateway and the
 * authorization server, 2,500 slowloris connections (headers never finished) and 2,500 slow bodies
 * (headers complete, a byte of body every 2 s) are held from ten attacker addresses, 10,000 in all,
 * reconnecting whenever the server closes one. Meanwhile 40 agents keep working through the gateway
 * (valid calls, and 10 % fresh onboardings, which open new connections to both servers).
 *
 * Promises: every legitimate request succeeds (before, during and after the attack); both servers
 * stay up and never run out of file descriptors (no EMFILE).
 */
import { readdirSync } from 'node:fs';
import { Addresses, Tally } from '../support/outcomes.ts';
import {
  check,
  percentile,
  type Scenario,
  type ScenarioContext,
  type ScenarioReport,
  sleep,
} from '../support/scenario.ts';
import { SlowAttack } from '../support/slow-attack.ts';
import { APPROVED_DOMAIN, type ComponentName, OPEN_FILE_LIMIT, Stack } from '../support/stack.ts';
import { onboardAgents, type Population, runTraffic } from '../support/traffic.ts';
import { failureExamples } from './load.ts';

const AGENTS = 40;
const PER_KIND = 2500;
const ATTACKERS = Array.from({ length: 10 }, (_, i) => `127.66.0.${i + 1}`);
const BASELINE_MS = 5000;
const ATTACK_MS = 30_000;
const AFTER_MS = 5000;
const TARGETS: Array<{ component: ComponentName; port: number; slowBodyPath: string }> = [
  { component: 'gateway', port: 8000, slowBodyPath: '/mcp' },
  { component: 'authorization-server', port: 9000, slowBodyPath: '/register' },
];

export const scenario: Scenario = {
  name: 'slow-connections',
  title: `slowloris and slow bodies (${(PER_KIND * 2 * TARGETS.length).toLocaleString('en')} connections) against a ${OPEN_FILE_LIMIT.toLocaleString('en')} open-file limit`,
  budgetSeconds: 120,
  run,
};

const openFiles = (pid: number) => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
};

/** Sums the counts in the listeners' "connection limit reached" summaries. */
function pressureCounter(stack: Stack, component: ComponentName) {
  const totals = new Map<string, number>();
  let emfile = 0;
  stack.components[component].onLine((line) => {
    if (line.includes('EMFILE')) emfile += 1;
    if (!line.includes('connection limit reached')) return;
    try {
      const record = JSON.parse(line) as Record<string, unknown>;
      for (const key of ['headers_pending', 'idle', 'slow_body', 'refused']) {
        if (typeof record[key] === 'number')
          totals.set(key, (totals.get(key) ?? 0) + (record[key] as number));
      }
    } catch {
      // Not a log record.
    }
  });
  return {
    totals,
    get emfile() {
      return emfile;
    },
  };
}

async function run({ dir, progress }: ScenarioContext): Promise<ScenarioReport> {
  const stack = new Stack(dir, [APPROVED_DOMAIN]);
  try {
    progress('starting the stack');
    await stack.start();
    const pressure = Object.fromEntries(
      TARGETS.map((t) => [t.component, pressureCounter(stack, t.component)]),
    );
    const users = { next: 0 };
    const population: Population = { mcpUrl: stack.urls.mcpUrl, machines: new Addresses(8), users };
    const agents = await onboardAgents(population, AGENTS);
    const tally = new Tally();
    const phases = { before: new Tally(), attack: new Tally(), after: new Tally() };
    const latencies: number[] = [];
    let phase: keyof typeof phases = 'before';
    let stop = false;
    const maxFiles = new Map<string, number>();
    const fdTimer = setInterval(() => {
      for (const [name, pid] of Object.entries(stack.pids())) {
        maxFiles.set(name, Math.max(maxFiles.get(name) ?? 0, openFiles(pid)));
      }
    }, 500);

    const traffic = runTraffic({
      agents,
      fresh: { ...population, machines: new Addresses(9) },
      share: { onboarding: 0.1, bogus: 0 },
      until: () => stop,
      record(event) {
        tally.add(event.kind, event.verdict.label, event.evidence);
        phases[phase].add(event.kind, event.verdict.label);
        if (phase === 'attack' && event.kind === 'valid' && event.verdict.ok) latencies.push(event.ms);
      },
    });
    await sleep(BASELINE_MS);
    const attacks = TARGETS.flatMap((target) =>
      (['slowloris', 'slow-body'] as const).map(
        (kind) =>
          new SlowAttack({
            host: '127.0.0.1',
            port: target.port,
            path: kind === 'slowloris' ? '/mcp' : target.slowBodyPath,
            kind,
            connections: PER_KIND,
            addresses: ATTACKERS,
          }),
      ),
    );
    phase = 'attack';
    progress(
      `attack: ${attacks.length} × ${PER_KIND} slow connections from ${ATTACKERS.length} addresses, for ${ATTACK_MS / 1000} s`,
    );
    await Promise.all(attacks.map((attack) => attack.start()));
    const ticker = setInterval(() => {
      progress(
        `attack: ${attacks.reduce((n, a) => n + a.stats.open, 0)} attacker connections open; legit ${tally.count('valid', 'ok')}/${tally.count('valid')} calls ok, ` +
          `onboardings ${tally.count('onboarding', 'ok')}/${tally.count('onboarding')}; open files ${[...maxFiles].map(([n, c]) => `${n} ${c}`).join(', ')}`,
      );
    }, 10_000);
    await sleep(ATTACK_MS);
    clearInterval(ticker);
    for (const attack of attacks) attack.stop();
    phase = 'after';
    await sleep(AFTER_MS);
    stop = true;
    await traffic;
    clearInterval(fdTimer);
    for (const agent of agents) agent.close();

    const failures =
      tally.count('valid') -
      tally.count('valid', 'ok') +
      tally.count('onboarding') -
      tally.count('onboarding', 'ok');
    const down = TARGETS.filter((t) => !stack.components[t.component].running).map((t) => t.component);
    const emfile = TARGETS.reduce((n, t) => n + pressure[t.component]!.emfile, 0);
    const attackLine = (i: number) => {
      const attack = attacks[i]!;
      const answers =
        [...attack.stats.answers].map(([status, count]) => `${status} × ${count}`).join(', ') || 'none';
      return `${attack.stats.opened} opened (at most ${attack.stats.maxOpen} open at once), ${attack.stats.closedByServer} closed by the server; answers: ${answers}`;
    };
    const show = (t: Tally) => `valid ${t.describe('valid')}; onboardings ${t.describe('onboarding')}`;
    return {
      checks: [
        check(
          'legitimate requests keep succeeding',
          failures === 0 && phases.attack.count('valid', 'ok') > 0,
          show(tally),
        ),
        check(
          'both servers stay up, within their file descriptors',
          down.length === 0 && emfile === 0,
          `${down.length === 0 ? 'both up' : `down: ${down.join(', ')}`}; EMFILE in logs: ${emfile}; most open files: ` +
            [...maxFiles].map(([name, count]) => `${name} ${count}`).join(', '),
        ),
      ],
      numbers: [
        [
          'legit agents; baseline / attack / after',
          `${AGENTS}; ${BASELINE_MS / 1000} s / ${ATTACK_MS / 1000} s / ${AFTER_MS / 1000} s`,
        ],
        ['legit requests before the attack', show(phases.before)],
        ['legit requests during the attack', show(phases.attack)],
        ['legit requests after the attack', show(phases.after)],
        [
          'legit call latency during the attack p50 / p99 / max',
          `${percentile(latencies, 50)} / ${percentile(latencies, 99)} / ${percentile(latencies, 100)} ms`,
        ],
        ...TARGETS.flatMap(
          (target, t): Array<[string, string]> => [
            [`${target.component}: slowloris`, attackLine(t * 2)],
            [`${target.component}: slow bodies (${target.slowBodyPath})`, attackLine(t * 2 + 1)],
            [
              `${target.component}: evicted or refused (its own count)`,
              [...pressure[target.component]!.totals].map(([key, count]) => `${key} ${count}`).join(', ') ||
                'none',
            ],
            [
              `${target.component}: most open files (limit ${OPEN_FILE_LIMIT})`,
              String(maxFiles.get(target.component) ?? '?'),
            ],
          ],
        ),
      ],
      deviations: stack.deviations,
      notes: failureExamples(tally),
    };
  } finally {
    await stack.close();
  }
}
