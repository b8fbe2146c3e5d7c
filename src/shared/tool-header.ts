/**
 * The MCP tool a token exchange is for, named by the MCP server in `Gatehouse-Tool` on its exchange
 * request, so the authorization server's `token.exchange` audit record says which tool call caused
 * it (issue 9, audit trail). Like the request id (request-id.ts), the authorization server takes it
 * only from a client allowed to exchange (the MCP server), and only when it is a plausible tool name:
 * correlation only, nothing is authorized by it.
 */
import type { IncomingHttpHeaders } from 'node:http';

export const TOOL_HEADER = 'gatehouse-tool';

/**
 * Letters, digits and `_.-`, 1 to 64 characters: exactly what `mcpServer.tools[].name` allows
 * (config/schema.ts), so every configured tool fits and nothing else (no spaces, no control
 * characters to forge a log line with).
 */
const PLAUSIBLE = /^[A-Za-z0-9_.-]{1,64}$/;

export const isPlausibleToolName = (name: string): boolean => PLAUSIBLE.test(name);

/** The tool named in the request's `Gatehouse-Tool` header when it is plausible, else undefined. */
export function toolNameFrom(headers: IncomingHttpHeaders): string | undefined {
  const value = headers[TOOL_HEADER];
  return typeof value === 'string' && PLAUSIBLE.test(value) ? value : undefined;
}
