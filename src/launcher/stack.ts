/**
 * Starts the whole stack in one process, in dependency order: the authorization server (which
 * creates keys and the internal clients' secrets on first start), the example APIs, the MCP server,
 * then the gateway in front. Stops them in reverse order. Components still talk over HTTP only.
 */
import { startApis } from '../apis/server.ts';
import { type RunningAuthorizationServer, startAuthorizationServer } from '../authorization-server/server.ts';
import { startGateway } from '../gateway/server.ts';
import { startMcpServer } from '../mcp-server/server.ts';
import type { ComponentOptions, RunningComponent } from '../shared/component.ts';
import type { LoadedConfig } from '../shared/config/load.ts';

export interface RunningStack {
  authorizationServer: RunningAuthorizationServer;
  apis: RunningComponent;
  mcpServer: RunningComponent;
  gateway: RunningComponent;
  close(): Promise<void>;
}

export async function startStack(
  loaded: LoadedConfig,
  options: ComponentOptions = {},
): Promise<RunningStack> {
  const started: Array<{ close(): Promise<void> }> = [];
  const closeAll = async () => {
    for (const component of started.reverse()) await component.close();
  };
  try {
    const authorizationServer = await startAuthorizationServer(loaded, options);
    started.push(authorizationServer);
    const apis = await startApis(loaded, options);
    started.push(apis);
    const mcpServer = await startMcpServer(loaded, options);
    started.push(mcpServer);
    const gateway = await startGateway(loaded, options);
    started.push(gateway);
    return { authorizationServer, apis, mcpServer, gateway, close: closeAll };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
