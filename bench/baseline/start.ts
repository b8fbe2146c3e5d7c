/**
 * Starts one hop of the independent baseline in this process:
 *   node bench/baseline/start.ts apis <port>
 *   node bench/baseline/start.ts mcp-server <port> <apis URL>
 *   node bench/baseline/start.ts proxy <port> <mcp server URL>
 *   node bench/baseline/start.ts authorization-server <port> <dataDir>
 * Forked by the bench (bench/child.ts), it answers over the IPC channel (bench/ipc-child.ts: ready,
 * CPU time, stop); started by hand, it prints `ready` once it listens and stops on SIGTERM or Ctrl-C.
 * Nothing here loads Gatehouse's code.
 */
import type { Server } from 'node:http';
import { serveParent } from '../ipc-child.ts';
import { startBaselineApis } from './apis.ts';
import { startBareAuthorizationServer } from './authorization-server.ts';
import { startBaselineMcpServer } from './mcp-server.ts';
import { startBaselineProxy } from './proxy.ts';

const [role, portText, upstream] = process.argv.slice(2);
const port = Number(portText);

async function start(): Promise<{ server: Server; info?: Record<string, unknown> }> {
  switch (role) {
    case 'apis':
      return { server: await startBaselineApis(port) };
    case 'mcp-server':
      return { server: await startBaselineMcpServer(port, upstream!) };
    case 'proxy':
      return { server: await startBaselineProxy(port, upstream!) };
    case 'authorization-server': {
      const as = await startBareAuthorizationServer(port, upstream!);
      return { server: as.server, info: { privateKeyFiles: as.privateKeyFiles } };
    }
    default:
      throw new Error(`unknown role ${role}`);
  }
}

/** Stops accepting and ends the idle keep-alive connections, so the close does not wait for clients. */
const close = (server: Server) =>
  new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });

if (process.send) {
  serveParent(async () => {
    const { server, info } = await start();
    return { ...(info ? { info } : {}), close: () => close(server) };
  });
} else {
  const { server } = await start();
  console.log('ready');
  const stop = () => void close(server).then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
