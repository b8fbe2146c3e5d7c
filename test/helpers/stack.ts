/**
 * The whole stack on free loopback ports with a temporary data directory, configured so that every
 * URL points at the real ports: the MCP server's canonical URI is the gateway's `/mcp`, as an agent
 * sees it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loopbackStackSections, loopbackUrls } from '../../src/launcher/loopback-config.ts';
import { type RunningStack, startStack } from '../../src/launcher/stack.ts';
import { parseConfig } from '../../src/shared/config/load.ts';
import { createLogger } from '../../src/shared/logging.ts';
import { freePort } from './ports.ts';

export { freePort };

export interface TestStack {
  running: RunningStack;
  issuer: string;
  gatewayUrl: string;
  /** The MCP server's canonical URI, through the gateway. */
  mcpUrl: string;
  apisUrl: string;
  mcpServerUrl: string;
  dataDir: string;
  logs: string[];
  audit(event: string): Array<Record<string, unknown>>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

type Section = Record<string, unknown>;

export async function startTestStack(
  overrides: {
    authorizationServer?: Section;
    gateway?: Section;
    mcpServer?: Section;
    apis?: Section;
    metrics?: Section;
    tracing?: Section;
  } = {},
): Promise<TestStack> {
  const ports = {
    authorizationServer: await freePort(),
    gateway: await freePort(),
    mcpServer: await freePort(),
    apis: await freePort(),
  };
  const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-stack-'));
  const { issuer, gatewayUrl, mcpUrl, apisUrl, mcpServerUrl } = loopbackUrls(ports);
  const sections = loopbackStackSections(ports);
  const config = parseConfig({
    dataDir,
    logLevel: 'debug',
    authorizationServer: {
      ...sections.authorizationServer,
      login: { perEmail: { max: 1000, windowSeconds: 60 }, perAddress: { max: 1000, windowSeconds: 60 } },
      ...overrides.authorizationServer,
    },
    gateway: { ...sections.gateway, ...overrides.gateway },
    mcpServer: { ...sections.mcpServer, ...overrides.mcpServer },
    apis: { ...sections.apis, ...overrides.apis },
    ...(overrides.metrics ? { metrics: overrides.metrics } : {}),
    ...(overrides.tracing ? { tracing: overrides.tracing } : {}),
  });
  const logs: string[] = [];
  const logger = createLogger('stack', { level: 'debug', write: (line) => logs.push(line) });
  const start = () => startStack({ config, dataDir, file: undefined }, { logger });
  const handle: TestStack = {
    running: await start(),
    issuer,
    gatewayUrl,
    mcpUrl,
    apisUrl,
    mcpServerUrl,
    dataDir,
    logs,
    audit: (event) =>
      logs
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((record) => record.message === 'audit' && record.event === event),
    async restart() {
      await handle.running.close();
      handle.running = await start();
    },
    async close() {
      await handle.running.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return handle;
}
