/**
 * scripts/ensure-chromium.mjs, which `npm test` runs first (pretest), as a real process on the
 * machine's Node. Chromium is installed on the machines these tests run on, so the missing case is
 * reached by pointing GATEHOUSE_CHROMIUM_PATH at a path where nothing is.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

const SCRIPT = path.resolve(import.meta.dirname, '../../scripts/ensure-chromium.mjs');

function run(env: Record<string, string | undefined>) {
  const { GATEHOUSE_CHROMIUM_PATH: _path, GATEHOUSE_BROWSER_TESTS: _switch, ...inherited } = process.env;
  const result = spawnSync(process.execPath, [SCRIPT], { env: { ...inherited, ...env }, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

const missing = () => path.join(mkdtempSync(path.join(tmpdir(), 'gatehouse-chromium-')), 'chromium');

test('a Chromium where the browser tests look: nothing to do, nothing printed', () => {
  const present = missing();
  writeFileSync(present, '');
  const result = run({ GATEHOUSE_CHROMIUM_PATH: present });
  assert.equal(result.status, 0);
  assert.equal(result.output, '');
});

test('no Chromium at GATEHOUSE_CHROMIUM_PATH: fails and says exactly how to get one or skip', () => {
  const nowhere = missing();
  const result = run({ GATEHOUSE_CHROMIUM_PATH: nowhere });
  assert.equal(result.status, 1);
  assert.match(result.output, new RegExp(`GATEHOUSE_CHROMIUM_PATH is ${nowhere}, and nothing is there`));
  assert.match(result.output, /sudo apt-get install -y chromium/);
  assert.match(result.output, /GATEHOUSE_BROWSER_TESTS=0 npm test/);
  assert.doesNotMatch(
    result.output,
    /apt-get update/,
    'it does not install a package that would land elsewhere',
  );
});

test('GATEHOUSE_BROWSER_TESTS=0: a missing Chromium is fine, and the skip is said out loud', () => {
  const result = run({ GATEHOUSE_CHROMIUM_PATH: missing(), GATEHOUSE_BROWSER_TESTS: '0' });
  assert.equal(result.status, 0);
  assert.match(result.output, /GATEHOUSE_BROWSER_TESTS=0, so the browser tests will be skipped/);
});

/** The Node that Debian installs: the one a fresh machine has before `npm install` brings Node 24. */
const SYSTEM_NODE = '/usr/bin/node';

test('the script runs on the Node a machine ships (plain JavaScript)', {
  skip: !existsSync(SYSTEM_NODE),
}, () => {
  const result = spawnSync(SYSTEM_NODE, [SCRIPT], {
    env: { PATH: process.env.PATH, GATEHOUSE_CHROMIUM_PATH: missing() },
    encoding: 'utf8',
  });
  assert.equal(result.status, 1, result.stderr);
  assert.match(result.stderr, /sudo apt-get install -y chromium/);
});
