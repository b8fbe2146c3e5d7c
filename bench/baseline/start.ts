/**
 * Starts one hop of the independent baseline in this process:
 *   node bench/baseline/start.ts apis <port>
 *   node bench/baseline/start.ts mcp-server <port> <apis URL>
 *   node bench/baseline/start.ts proxy <port> <mcp server URL>
 * and prints `ready` once it listens.
 */
import { startBaselineApis } from './apis.ts';
import { startBaselineMcpServer } from './mcp-server.ts';
import { startBaselineProxy } from './proxy.ts';

const [role, port, upstream] = process.argv.slice(2);
const listening =
  role === 'apis'
    ? startBaselineApis(Number(port))
    : role === 'mcp-server'
      ? startBaselineMcpServer(Number(port), upstream!)
      : role === 'proxy'
        ? startBaselineProxy(Number(port), upstream!)
        : Promise.reject(new Error(`unknown role ${role}`));
const server = await listening;
console.log('ready');
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
