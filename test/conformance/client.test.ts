/**
 * The official MCP conformance suite (`@modelcontextprotocol/conformance`) with this project's agent
 * as the client (client.ts): the suite runs the 2026-07-28 requirement set's client scenarios (at
 * that revision's wire version) and its not-scored extensions, each against its own mock MCP and
 * authorization servers, and every check of every scenario the agent implements must pass.
 *
 * One run of the suite for all scenarios (it runs them in parallel; one process instead of one per
 * scenario keeps the file short on a busy machine), then a test per scenario over what it wrote.
 * The scenarios the agent does not pass, each for a feature it does not have, are in
 * expected-failures.yaml; the suite fails the run when one of them starts passing, or another fails.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const SUITE = path.join(ROOT, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
const CLIENT = path.join(import.meta.dirname, 'client.ts');
const BASELINE = path.join(import.meta.dirname, 'expected-failures.yaml');

/** The scenarios that must pass: the requirement set's client list (but one) and the extensions. */
const PASSING = [
  'tools_call',
  'request-metadata',
  'auth/metadata-default',
  'auth/metadata-var1',
  'auth/metadata-var2',
  'auth/metadata-var3',
  'auth/basic-cimd',
  'auth/scope-from-www-authenticate',
  'auth/scope-from-scopes-supported',
  'auth/scope-omitted-when-undefined',
  'auth/scope-step-up',
  'auth/scope-retry-limit',
  'auth/token-endpoint-auth-basic',
  'auth/token-endpoint-auth-post',
  'auth/token-endpoint-auth-none',
  'auth/pre-registration',
  'auth/resource-mismatch',
  'auth/offline-access-scope',
  'auth/offline-access-not-supported',
  'auth/authorization-server-migration',
  'auth/iss-supported',
  'auth/iss-not-advertised',
  'auth/iss-supported-missing',
  'auth/iss-wrong-issuer',
  'auth/iss-unexpected',
  'auth/iss-normalized',
  'auth/metadata-issuer-mismatch',
  'http-standard-headers',
  'http-custom-headers',
  'http-invalid-tool-headers',
  'json-schema-ref-no-deref',
  'json-schema-2020-12-preservation',
  'auth/dpop',
  'auth/dpop-nonce',
  'auth/client-credentials-jwt',
  'auth/client-credentials-basic',
];

/** In expected-failures.yaml, with the reason there. */
const NOT_PASSING = [
  'sep-2322-client-request-state',
  'auth/enterprise-managed-authorization',
  'auth/wif-jwt-bearer',
];

/** Checks that must be among the passing ones: the point of the scenario, so it cannot pass vacuously. */
const ESSENTIAL: Record<string, string[]> = {
  'auth/dpop': [
    'sep-1932-client-token-request-proof',
    'sep-1932-client-dpop-auth-scheme',
    'sep-1932-client-fresh-proof',
  ],
  'auth/dpop-nonce': [
    'sep-1932-client-token-request-proof',
    'sep-1932-client-dpop-auth-scheme',
    'sep-1932-client-fresh-proof',
    'sep-1932-client-as-nonce',
    'sep-1932-client-rs-nonce',
  ],
  'auth/authorization-server-migration': [
    'sep-2352-reregister-on-as-change',
    'sep-2352-no-reuse-on-as-change',
    'sep-2352-no-cross-as-credential-reuse',
  ],
};

interface Check {
  id: string;
  status: string;
  description?: string;
  errorMessage?: string;
}

/** The checks.json of each scenario, from the suite's `<out>/<scenario>-<time>/` folders. */
function checksByScenario(dir: string): Map<string, Check[]> {
  const found = new Map<string, Check[]>();
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || entry.name !== 'checks.json') continue;
    const folder = path.relative(dir, entry.parentPath).split(path.sep).join('/');
    const scenario = folder.replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, '');
    found.set(scenario, JSON.parse(readFileSync(path.join(entry.parentPath, entry.name), 'utf8')) as Check[]);
  }
  return found;
}

describe('the MCP conformance suite, client scenarios, with the agent as the client', () => {
  let suite: { exitCode: number; output: string; checks: Map<string, Check[]> };
  before(async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'gatehouse-conformance-results-'));
    const args = [
      SUITE,
      'client',
      '--command',
      `${process.execPath} ${CLIENT}`,
      '--requirements',
      '2026-07-28',
      '--expected-failures',
      BASELINE,
      // Generous: on a busy machine dozens of agent processes start at once; no scenario waits on time.
      '--timeout',
      '120000',
      '-o',
      out,
    ];
    let exitCode = 0;
    let output = '';
    try {
      const { stdout, stderr } = await run(process.execPath, args, {
        cwd: ROOT,
        maxBuffer: 64 * 1024 * 1024,
      });
      output = stdout + stderr;
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      exitCode = failed.code ?? 1;
      output = (failed.stdout ?? '') + (failed.stderr ?? '');
    }
    suite = { exitCode, output, checks: checksByScenario(out) };
    rmSync(out, { recursive: true, force: true });
  });

  test('every scenario ran, and only those of the baseline failed (none of them passed)', () => {
    assert.deepEqual([...suite.checks.keys()].sort(), [...PASSING, ...NOT_PASSING].sort());
    const summary = suite.output.slice(suite.output.lastIndexOf('Total:'));
    assert.equal(suite.exitCode, 0, `the suite's verdict:\n${summary}`);
  });

  for (const name of PASSING) {
    test(name, () => {
      const checks = suite.checks.get(name) ?? [];
      const failing = checks
        .filter((check) => check.status === 'FAILURE' || check.status === 'WARNING')
        .map((check) => `${check.id} (${check.status}): ${check.errorMessage ?? check.description ?? ''}`);
      assert.deepEqual(failing, [], `failing checks in ${name}`);
      const passed = new Set(checks.filter((check) => check.status === 'SUCCESS').map((check) => check.id));
      assert.ok(passed.size > 0, 'the scenario ran checks');
      for (const id of ESSENTIAL[name] ?? []) assert.ok(passed.has(id), `${id} passed`);
    });
  }
});
