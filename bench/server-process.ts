/**
 * The server side of a benchmark, in a child process of bench/run.ts so that the load generator and
 * the servers do not share a core. Started with `fork`; talks over the IPC channel:
 *
 *   argv: <role> <ports JSON> <dataDir> [sqlite|memory]
 *   → { type: 'ready', ... }        once listening
 *   ← { type: 'cpu' }  → { type: 'cpu', usage }   process.cpuUsage() (all threads), for CPU accounting
 *   ← { type: 'stop' }              closes everything and exits
 *
 * Roles: `stack` (authorization server, APIs, MCP server and gateway: what `gatehouse start` runs),
 * `unsecured` (bench/unsecured-chain.ts), `authorization-server` (alone, with the chosen token store;
 * the store is a start option, not configuration, which is why this is not `gatehouse serve`).
 * Logs are produced at the configured level (`info`) and discarded, so their cost is counted.
 */
import { startAuthorizationServer } from '../src/authorization-server/server.ts';
import { startStack } from '../src/launcher/stack.ts';
import { createLogger } from '../src/shared/logging.ts';
import { type BenchPorts, benchConfig } from './config.ts';
import { startUnsecuredChain } from './unsecured-chain.ts';

export type ServerRole = 'stack' | 'unsecured' | 'authorization-server';

export type ParentMessage = { type: 'cpu' } | { type: 'stop' };
export type ChildMessage =
  | { type: 'ready'; privateKeyFiles: Record<string, string> }
  | { type: 'cpu'; usage: NodeJS.CpuUsage }
  | { type: 'error'; message: string };

const send = (message: ChildMessage) => process.send?.(message);

async function main(): Promise<void> {
  const [role, portsJson, dataDir, storage] = process.argv.slice(2);
  if (!role || !portsJson || !dataDir || !process.send) throw new Error('started without its arguments');
  const loaded = benchConfig(JSON.parse(portsJson) as BenchPorts, dataDir);
  const logger = createLogger('bench', { level: loaded.config.logLevel, write: () => {} });

  let close: () => Promise<void>;
  let privateKeyFiles: Record<string, string> = {};
  if (role === 'stack') {
    const stack = await startStack(loaded, { logger });
    privateKeyFiles = stack.authorizationServer.privateKeyFiles;
    close = () => stack.close();
  } else if (role === 'unsecured') {
    const chain = await startUnsecuredChain(loaded, logger);
    close = () => chain.close();
  } else if (role === 'authorization-server') {
    const as = await startAuthorizationServer(loaded, {
      logger,
      storage: storage === 'memory' ? 'memory' : 'sqlite',
    });
    privateKeyFiles = as.privateKeyFiles;
    close = () => as.close();
  } else {
    throw new Error(`unknown role ${role}`);
  }

  process.on('message', (message: ParentMessage) => {
    if (message.type === 'cpu') send({ type: 'cpu', usage: process.cpuUsage() });
    if (message.type === 'stop') {
      void close().finally(() => process.exit(0));
    }
  });
  // The parent went away without saying stop: do not linger.
  process.on('disconnect', () => {
    void close().finally(() => process.exit(0));
  });
  send({ type: 'ready', privateKeyFiles });
}

main().catch((error: unknown) => {
  send({ type: 'error', message: (error as Error).stack ?? String(error) });
  process.exit(1);
});
