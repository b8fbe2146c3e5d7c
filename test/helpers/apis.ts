/**
 * Starts the example APIs on an ephemeral loopback port with the given `apis` configuration, and
 * collects their log lines so tests can assert on them (and on the absence of tokens).
 */
import { tmpdir } from 'node:os';
import { startApis } from '../../src/apis/server.ts';
import { parseConfig } from '../../src/shared/config/load.ts';
import { createLogger } from '../../src/shared/logging.ts';

export interface TestApis {
  url: string;
  logs: string[];
  /** Parsed log records with the given message (`request`, `audit`, ...). */
  records(message: string): Array<Record<string, unknown>>;
  close(): Promise<void>;
}

export async function startTestApis(apis: Record<string, unknown>): Promise<TestApis> {
  const logs: string[] = [];
  const config = parseConfig({
    logLevel: 'debug',
    apis: { listen: { host: '127.0.0.1', port: 0 }, ...apis },
  });
  const running = await startApis(
    { config, dataDir: tmpdir(), file: undefined },
    { logger: createLogger('apis', { level: 'debug', write: (line) => logs.push(line) }) },
  );
  return {
    url: running.url,
    logs,
    records: (message) =>
      logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((r) => r.message === message),
    close: () => running.close(),
  };
}
