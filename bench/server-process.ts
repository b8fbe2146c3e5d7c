/**
 * One Gatehouse hop of a benchmark, in a process of its own (forked by bench/child.ts, talking over
 * bench/ipc-child.ts), so that every hop has its own event loop and the load generator has its own:
 *
 *   node bench/server-process.ts <role> <ports JSON> <dataDir> [options JSON]
 *
 * Roles:
 * - `authorization-server`, `apis`, `mcp-server`, `gateway`: the component, started as
 *   `gatehouse serve <component>` starts it (src/cli.ts: the component's start function with the
 *   loaded configuration), on the bench configuration (bench/config.ts) instead of a file. The
 *   processes of one chain share the data directory, as the components of one host do: the
 *   authorization server creates the keys and the internal clients' secrets there on its first
 *   start, the others read them. Options: `storage` (`sqlite`, the configured store, or `memory`: a start option of the
 *   authorization server, deliberately not configuration) and `listenPort` (a second authorization
 *   server process on the same issuer and store, for the scaling harness).
 * - `unsecured-apis`, `unsecured-mcp-server`, `unsecured-gateway`: the hops of the bench's own
 *   unsecured chain (bench/unsecured-chain.ts).
 *
 * Logs are produced at the configured level (`info`) and discarded, so formatting and redaction are
 * counted and writing them out is not. Each role loads only its own modules.
 */
import { type BenchPorts, type BenchStartOptions, benchConfig } from './config.ts';
import { serveParent } from './ipc-child.ts';

export const GATEHOUSE_ROLES = [
  'authorization-server',
  'apis',
  'mcp-server',
  'gateway',
  'unsecured-apis',
  'unsecured-mcp-server',
  'unsecured-gateway',
] as const;
export type GatehouseRole = (typeof GATEHOUSE_ROLES)[number];

const [role, portsJson, dataDir, optionsJson] = process.argv.slice(2);

serveParent(async () => {
  if (!role || !portsJson || !dataDir) throw new Error('started without its arguments');
  const options = JSON.parse(optionsJson ?? '{}') as BenchStartOptions;
  const loaded = benchConfig(JSON.parse(portsJson) as BenchPorts, dataDir, options);
  const { createLogger } = await import('../src/shared/logging.ts');
  const logger = createLogger('bench', { level: loaded.config.logLevel, write: () => {} });
  switch (role as GatehouseRole) {
    case 'authorization-server': {
      const { startAuthorizationServer } = await import('../src/authorization-server/server.ts');
      const as = await startAuthorizationServer(loaded, { logger, storage: options.storage ?? 'sqlite' });
      return { info: { privateKeyFiles: as.privateKeyFiles }, close: () => as.close() };
    }
    case 'apis': {
      const { startApis } = await import('../src/apis/server.ts');
      return startApis(loaded, { logger });
    }
    case 'mcp-server': {
      const { startMcpServer } = await import('../src/mcp-server/server.ts');
      return startMcpServer(loaded, { logger });
    }
    case 'gateway': {
      const { startGateway } = await import('../src/gateway/server.ts');
      return startGateway(loaded, { logger });
    }
    case 'unsecured-apis':
      return (await import('./unsecured-chain.ts')).startPlainApis(loaded, logger);
    case 'unsecured-mcp-server':
      return (await import('./unsecured-chain.ts')).startPlainMcpServer(loaded, logger);
    case 'unsecured-gateway':
      return (await import('./unsecured-chain.ts')).startPlainGateway(loaded, logger);
    default:
      throw new Error(`unknown role ${role}`);
  }
});
