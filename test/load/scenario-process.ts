/**
 * One scenario, run inside its network namespace by test/load/run.ts:
 *
 *   ip netns exec <namespace> node test/load/scenario-process.ts <scenario> <dir> <result.json>
 *
 * Progress lines go to stderr; the result (ScenarioResult) is written to <result.json>. Whatever
 * happens, the server processes this scenario started are stopped before it exits (by their pids).
 */
import { writeFileSync } from 'node:fs';
import { SCENARIOS } from './scenarios/index.ts';
import type { ScenarioResult } from './support/scenario.ts';
import { describeTcpGrowth, readTcpCounters } from './support/tcp-counters.ts';

const [name, dir, resultFile] = process.argv.slice(2);
if (!name || !dir || !resultFile || !SCENARIOS[name]) {
  console.error(`usage: scenario-process.ts <${Object.keys(SCENARIOS).join('|')}> <dir> <result.json>`);
  process.exit(2);
}

const started = Date.now();
const progress = (line: string) => {
  const seconds = ((Date.now() - started) / 1000).toFixed(0).padStart(3);
  process.stderr.write(`[${name} ${seconds}s] ${line}\n`);
};

async function main(): Promise<ScenarioResult> {
  const scenario = await SCENARIOS[name!]!();
  const base = { scenario: name!, title: scenario.title, dir: dir! };
  try {
    const tcp = readTcpCounters();
    const report = await scenario.run({ dir: dir!, progress });
    report.numbers.push(['kernel TCP counters in the namespace (growth)', describeTcpGrowth(tcp)]);
    return { ...base, ...report, seconds: Math.round((Date.now() - started) / 1000) };
  } catch (error) {
    progress(`failed: ${(error as Error).stack ?? String(error)}`);
    return {
      ...base,
      seconds: Math.round((Date.now() - started) / 1000),
      checks: [{ promise: 'the scenario ran to its end', ok: false, detail: (error as Error).message }],
      numbers: [],
      deviations: [],
    };
  }
}

main().then(
  (result) => {
    writeFileSync(resultFile, JSON.stringify(result, null, 2));
    process.exit(0);
  },
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
