/**
 * Tool calls as an agent sends them once it is connected: raw JSON-RPC `tools/call` POSTs in the
 * 2025-11-25 style (no `_meta` envelope; `MCP-Protocol-Version` header, no session: the server is
 * stateless), over keep-alive connections, by `concurrency` callers each waiting for its answer
 * before sending the next, for a fixed time (and at most a fixed count).
 */
import type http from 'node:http';
import { type HttpAnswer, request } from './http-client.ts';
import { nowMs } from './stats.ts';

export const READ_TOOL = { name: 'get_stock', arguments: { symbol: 'SAP' } };
export const PROTOCOL_VERSION = '2025-11-25';

export const MCP_PATH = '/mcp';

let nextId = 1;

export function toolCallBody(tool: { name: string; arguments: Record<string, unknown> } = READ_TOOL): string {
  return JSON.stringify({ jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: tool });
}

export function mcpHeaders(token: string | undefined): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': PROTOCOL_VERSION,
    ...(token ? { authorization: `Bearer ${token}` } : {}),
  };
}

/** The JSON-RPC message of an answer that is JSON or a one-event SSE stream. */
export function rpcMessage(answer: HttpAnswer): Record<string, unknown> {
  let text = answer.body;
  if (String(answer.headers['content-type'] ?? '').includes('text/event-stream')) {
    const data = text
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => line.slice(6))
      .find((line) => line.includes('"jsonrpc"'));
    if (!data) throw new Error(`no JSON-RPC message in the event stream: ${text.slice(0, 200)}`);
    text = data;
  }
  return JSON.parse(text) as Record<string, unknown>;
}

/** The text of a successful tool result; throws with the reason otherwise. */
export function toolResultText(answer: HttpAnswer): string {
  if (answer.status !== 200)
    throw new Error(`tools/call answered HTTP ${answer.status}: ${answer.body.slice(0, 200)}`);
  const message = rpcMessage(answer);
  const result = message.result as { content?: Array<{ text?: string }>; isError?: boolean } | undefined;
  if (!result)
    throw new Error(`tools/call failed: ${JSON.stringify(message.error ?? message).slice(0, 200)}`);
  const text = (result.content ?? []).map((block) => block.text ?? '').join('');
  if (result.isError) throw new Error(`the tool reported an error: ${text.slice(0, 200)}`);
  return text;
}

export interface LoadOptions {
  /** Where caller `i` sends its calls: `urls[i % urls.length]` (several instances of one hop). */
  urls: URL[];
  agent: http.Agent;
  /** The bearer token caller `i` uses (undefined: none). */
  tokenFor: (caller: number) => string | undefined;
  concurrency: number;
  durationMs: number;
  maxCalls: number;
}

export interface LoadResult {
  calls: number;
  errors: number;
  firstError: string | undefined;
  elapsedMs: number;
  /** Per successful call, milliseconds from sending the request to having the whole answer. */
  latencies: number[];
}

export async function runToolCallLoad(options: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  let calls = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = nowMs();
  const deadline = started + options.durationMs;

  async function caller(index: number): Promise<void> {
    const headers = mcpHeaders(options.tokenFor(index));
    while (nowMs() < deadline && calls < options.maxCalls) {
      calls += 1;
      const sent = nowMs();
      try {
        const answer = await request(options.agent, options.urls[index % options.urls.length]!, {
          method: 'POST',
          headers,
          body: toolCallBody(),
        });
        toolResultText(answer);
        latencies.push(nowMs() - sent);
      } catch (error) {
        errors += 1;
        firstError ??= (error as Error).message;
      }
    }
  }

  await Promise.all(Array.from({ length: options.concurrency }, (_, i) => caller(i)));
  return { calls, errors, firstError, elapsedMs: nowMs() - started, latencies };
}
