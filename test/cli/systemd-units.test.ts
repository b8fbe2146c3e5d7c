/**
 * The systemd units of deploy/systemd/, one per component: each is a valid unit
 * (`systemd-analyze verify`, where systemd's tools are installed), its ExecStart starts that
 * component (run here, with the install and configuration paths swapped for this checkout's and a
 * test configuration), and its KillSignal drains and exits 0 well within TimeoutStopSec. Its limits
 * fit the component's defaults: the open-file limit holds twice http.maxConnections (a component
 * keeps at most half its limit), the stop timeout outlasts the drain and the CLI's own backstop.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loopbackStackSections } from '../../src/launcher/loopback-config.ts';
import { parseConfig } from '../../src/shared/config/load.ts';
import { freePort } from '../helpers/ports.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const UNITS = path.join(ROOT, 'deploy/systemd');
const COMPONENTS = ['authorization-server', 'gateway', 'mcp-server', 'apis'];
const defaults = parseConfig({});

/** `Key=value` lines of a unit file (the last one wins, as in systemd for these keys). */
function settings(text: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (match) found.set(match[1]!, match[2]!);
  }
  return found;
}

describe('the systemd units', () => {
  let dir: string;
  let configFile: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-units-'));
    const sections = loopbackStackSections({
      authorizationServer: await freePort(),
      gateway: await freePort(),
      mcpServer: await freePort(),
      apis: await freePort(),
    });
    configFile = path.join(dir, 'gatehouse.json');
    writeFileSync(configFile, JSON.stringify({ dataDir: path.join(dir, 'data'), ...sections }));
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('there is one unit per component, and no other', () => {
    assert.deepEqual(readdirSync(UNITS).sort(), COMPONENTS.map((name) => `gatehouse-${name}.service`).sort());
  });

  for (const component of COMPONENTS) {
    const file = path.join(UNITS, `gatehouse-${component}.service`);

    test(`gatehouse-${component}: valid, limits that fit the defaults, not root`, () => {
      const unit = settings(readFileSync(file, 'utf8'));
      assert.equal(unit.get('User'), 'gatehouse');
      assert.equal(unit.get('KillSignal'), 'SIGTERM');
      assert.equal(unit.get('NoNewPrivileges'), 'yes');
      assert.ok(
        Number(unit.get('LimitNOFILE')) >= 2 * defaults.http.maxConnections,
        'the open-file limit holds twice http.maxConnections',
      );
      // The CLI exits by itself drainTimeoutSeconds + 5 s after SIGTERM at the latest.
      assert.ok(Number(unit.get('TimeoutStopSec')) > defaults.http.drainTimeoutSeconds + 5);
      assert.match(
        unit.get('ExecStart') ?? '',
        new RegExp(` serve ${component} --config /etc/gatehouse/gatehouse\\.yaml$`),
      );
      if (existsSync('/usr/bin/systemd-analyze')) {
        // Verified with this checkout's paths, so that ExecStart names a real executable.
        const copy = path.join(dir, `gatehouse-${component}.service`);
        writeFileSync(copy, readFileSync(file, 'utf8').replaceAll('/opt/gatehouse', ROOT));
        execFileSync('/usr/bin/systemd-analyze', ['verify', copy], { stdio: 'pipe' });
      }
    });

    test(`gatehouse-${component}: ExecStart starts it, and KillSignal drains it to exit 0`, async () => {
      const unit = settings(readFileSync(file, 'utf8'));
      const [command, ...args] = unit
        .get('ExecStart')!
        .replaceAll('/opt/gatehouse', ROOT)
        .replace('/etc/gatehouse/gatehouse.yaml', configFile)
        .split(' ');
      const child = spawn(command!, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      for (const stream of [child.stdout, child.stderr]) stream.on('data', (chunk) => (output += chunk));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      try {
        const ready = await Promise.race([
          new Promise<boolean>((resolve) => {
            const check = setInterval(() => {
              if (/ready at /.test(output)) {
                clearInterval(check);
                resolve(true);
              }
            }, 50);
            exited.then(() => clearInterval(check));
          }),
          exited.then(() => false),
        ]);
        assert.ok(ready, `started: ${output.slice(-500)}`);
        child.kill(unit.get('KillSignal') as NodeJS.Signals);
        const code = await exited;
        assert.equal(code, 0, `exit 0 after ${unit.get('KillSignal')}: ${output.slice(-500)}`);
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    });
  }
});
