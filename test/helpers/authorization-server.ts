/**
 * Starts a real authorization server on an ephemeral port with a temporary data directory, and
 * collects its log lines so tests can assert on audit events (and on the absence of secrets).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type RunningAuthorizationServer,
  startAuthorizationServer,
} from '../../src/authorization-server/server.ts';
import { parseConfig } from '../../src/shared/config/load.ts';
import { createLogger } from '../../src/shared/logging.ts';

export interface TestAuthorizationServer {
  issuer: string;
  running: RunningAuthorizationServer;
  dataDir: string;
  logs: string[];
  /** Parsed audit records with the given event name. */
  audit(event: string): Array<Record<string, unknown>>;
  /** Stops and starts again on the same data directory (and a new port), optionally with changed settings. */
  restart(overrides?: Overrides): Promise<void>;
  close(): Promise<void>;
}

type Overrides = Record<string, unknown>;

/** Deep-merges plain objects (arrays and scalars replace). */
function merge(base: Overrides, extra: Overrides): Overrides {
  const out: Overrides = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key];
    out[key] =
      value &&
      typeof value === 'object' &&
      !Array.isArray(value) &&
      current &&
      typeof current === 'object' &&
      !Array.isArray(current)
        ? merge(current as Overrides, value as Overrides)
        : value;
  }
  return out;
}

export async function startTestAuthorizationServer(
  authorizationServer: Overrides = {},
): Promise<TestAuthorizationServer> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-test-'));
  const logs: string[] = [];
  const section = merge(
    {
      issuer: 'http://127.0.0.1:9000',
      listen: { host: '127.0.0.1', port: 0 },
      // Suites sign in many times from one address; the throttling tests set their own limits.
      login: { perEmail: { max: 1000, windowSeconds: 60 }, perAddress: { max: 1000, windowSeconds: 60 } },
    },
    authorizationServer,
  );
  const configFor = (overrides: Overrides) =>
    parseConfig({ dataDir, logLevel: 'debug', authorizationServer: merge(section, overrides) });
  let config = configFor({});
  const start = () =>
    startAuthorizationServer(
      { config, dataDir, file: undefined },
      { logger: createLogger('authorization-server', { level: 'debug', write: (line) => logs.push(line) }) },
    );
  const handle: TestAuthorizationServer = {
    running: await start(),
    issuer: '',
    dataDir,
    logs,
    audit: (event) =>
      logs
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((record) => record.message === 'audit' && record.event === event),
    async restart(overrides = {}) {
      await handle.running.close();
      config = configFor(overrides);
      handle.running = await start();
      handle.issuer = handle.running.issuer;
    },
    async close() {
      await handle.running.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  handle.issuer = handle.running.issuer;
  return handle;
}
