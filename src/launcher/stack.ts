/**
 * Starts the whole stack in one process, in dependency order: the authorization server (which
 * creates keys and the internal clients' secrets on first start), the example APIs, the MCP server,
 * then the gateway in front. Stops them in reverse order, the gateway first, so that requests in
 * flight through it still reach the components behind it; all of them share one drain deadline.
 * Components still talk over HTTP only.
 */
import { startApis } from '../apis/server.ts';
import { type RunningAuthorizationServer, startAuthorizationServer } from '../authorization-server/server.ts';
import { startGateway } from '../gateway/server.ts';
import { startMcpServer } from '../mcp-server/server.ts';
import type { ComponentOptions, RunningComponent } from '../shared/component.ts';
import type { LoadedConfig } from '../shared/config/load.ts';
import type { CloseOptions } from '../shared/http-server.ts';

export interface RunningStack {
  authorizationServer: RunningAuthorizationServer;
  apis: RunningComponent;
  mcpServer: RunningComponent;
  gateway: RunningComponent;
  close(options?: CloseOptions): Promise<void>;
}

export interface StackOptions extends ComponentOptions {
  /** Called as each component comes up, for progress output. */
  onStarted?: (component: string, url: string) => void;
}

export async function startStack(loaded: LoadedConfig, options: StackOptions = {}): Promise<RunningStack> {
  const report = options.onStarted ?? (() => {});
  const started: Array<Pick<RunningComponent, 'close'>> = [];
  const closeAll = async (closeOptions: CloseOptions = {}) => {
    const deadline = closeOptions.deadline ?? Date.now() + loaded.config.http.drainTimeoutSeconds * 1000;
    for (const component of [...started].reverse()) await component.close({ deadline });
  };
  /** Starts one component, remembers it for closing, and reports where it listens. */
  const up = async <T extends Pick<RunningComponent, 'close'>>(
    name: string,
    start: Promise<T>,
    url: (running: T) => string,
  ) => {
    const running = await start;
    started.push(running);
    report(name, url(running));
    return running;
  };
  try {
    const authorizationServer = await up(
      'authorization server',
      startAuthorizationServer(loaded, options),
      (running) => running.issuer,
    );
    const apis = await up('example APIs', startApis(loaded, options), (running) => running.url);
    const mcpServer = await up('MCP server', startMcpServer(loaded, options), (running) => running.url);
    const gateway = await up('gateway', startGateway(loaded, options), (running) => running.url);
    return { authorizationServer, apis, mcpServer, gateway, close: closeAll };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
