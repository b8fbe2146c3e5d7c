/**
 * One tool call becomes one HTTP request to an upstream API, with the token exchanged for that API.
 *
 * The request: `{name}` in the path template is replaced by the URL-encoded argument; the other
 * arguments go in the query string (GET, DELETE) or as a JSON body (POST, PUT, PATCH). The call has
 * a timeout. Whatever happens, the agent gets a tool result: the API's answer, or `isError` with a
 * message that says what failed (with the status) and what to do. Never a stack trace, never a token.
 */
import type { CallToolResult } from '@modelcontextprotocol/server';
import type { ToolConfig } from '../../shared/config/schema.ts';
import { REQUEST_ID_HEADER } from '../../shared/request-id.ts';
import { annotateSpan, inClientSpan, injectTraceContext } from '../../shared/tracing.ts';

type Method = ToolConfig['method'];
type Arguments = Record<string, unknown>;

const PARAMETER = /\{([A-Za-z0-9_.-]+)\}/g;
const HAS_BODY = new Set<Method>(['POST', 'PUT', 'PATCH']);
/** Upstream answers larger than this are cut: a tool result goes into a model's context. */
export const MAX_RESULT_BYTES = 256 * 1024;

/** The argument names a path template uses, in order. */
export function pathParameters(template: string): string[] {
  return [...template.matchAll(PARAMETER)].map((match) => match[1]!);
}

/** The arguments do not fit the request (a path argument missing or not a scalar). */
export class UpstreamRequestError extends Error {
  override name = 'UpstreamRequestError';
}

function pathSegmentValue(name: string, value: unknown): string {
  if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
    throw new UpstreamRequestError(`argument "${name}" must be a string, number or boolean`);
  }
  const text = String(value);
  // "." and ".." (however encoded) are dot segments to URL parsers: they would walk out of the API.
  if (text === '' || text === '.' || text === '..') {
    throw new UpstreamRequestError(`argument "${name}" must not be empty, "." or ".."`);
  }
  return encodeURIComponent(text);
}

function queryValues(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (Array.isArray(value)) return value.flatMap(queryValues);
  return [typeof value === 'object' ? JSON.stringify(value) : String(value)];
}

export interface UpstreamRequest {
  method: Method;
  url: string;
  /** JSON text, for methods with a body. */
  body: string | undefined;
}

/** Builds the upstream request for a tool call; `baseUrl` has no trailing slash. */
export function buildUpstreamRequest(
  tool: { method: Method; path: string },
  baseUrl: string,
  args: Arguments,
): UpstreamRequest {
  const used = new Set<string>();
  const path = tool.path.replace(PARAMETER, (_, name: string) => {
    used.add(name);
    return pathSegmentValue(name, args[name]);
  });
  const url = new URL(`${baseUrl}${path}`);
  const rest = Object.fromEntries(Object.entries(args).filter(([name]) => !used.has(name)));
  if (HAS_BODY.has(tool.method)) {
    return { method: tool.method, url: url.href, body: JSON.stringify(rest) };
  }
  for (const [name, value] of Object.entries(rest)) {
    for (const item of queryValues(value)) url.searchParams.append(name, item);
  }
  return { method: tool.method, url: url.href, body: undefined };
}

export interface UpstreamCallOptions {
  /** The API's display name in messages, e.g. `stocks`. */
  apiName: string;
  request: UpstreamRequest;
  /** The exchanged token for this API; never the agent's or the gateway's. */
  accessToken: string;
  timeoutMs: number;
  signal?: AbortSignal;
  fetch?: typeof fetch;
  /** The agent request's id (src/shared/request-id.ts), for the API's log. */
  requestId?: string | undefined;
}

export interface UpstreamOutcome {
  /** The API's HTTP status; undefined when it never answered. */
  status: number | undefined;
  /** Why the call failed, for the audit line; undefined on success. */
  failure: 'status' | 'timeout' | 'unreachable' | 'cancelled' | undefined;
  result: CallToolResult;
}

export const errorResult = (text: string): CallToolResult => ({
  content: [{ type: 'text', text }],
  isError: true,
});

/** The `error_description` (or `error`) of an API's JSON error body, shortened; nothing else of it. */
function apiErrorDetail(text: string): string | undefined {
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    const detail = body.error_description ?? body.message ?? body.error;
    if (typeof detail === 'string' && detail.length > 0) return detail.slice(0, 300);
  } catch {
    // Not JSON: say nothing about it rather than echo arbitrary text.
  }
  return undefined;
}

/** A message for an API's error status: what happened and what the agent (or its user) can do. */
export function describeUpstreamFailure(apiName: string, status: number, bodyText: string): string {
  const detail = status < 500 ? apiErrorDetail(bodyText) : undefined;
  const said = detail ? `: ${detail}` : '';
  const api = `The ${apiName} API`;
  if (status === 401) {
    return `${api} refused the credentials the MCP server obtained for it (HTTP 401)${said}. This is a configuration problem on the server side; try again later or tell the administrator.`;
  }
  if (status === 403) {
    return `${api} refused the request (HTTP 403)${said}. The signed-in user or this client is not allowed to do this; retrying will not help.`;
  }
  if (status === 404) return `${api} found nothing there (HTTP 404)${said}. Check the arguments.`;
  if (status === 429)
    return `${api} is rate limiting requests (HTTP 429)${said}. Wait a little and try again.`;
  if (status < 500)
    return `${api} rejected the request (HTTP ${status})${said}. Check the arguments and try again.`;
  return `${api} failed (HTTP ${status}). Try again later; if it keeps failing, tell the administrator.`;
}

/** Reads at most `limit` bytes of a body as text. */
async function readText(response: Response, limit: number): Promise<{ text: string; truncated: boolean }> {
  if (!response.body) return { text: '', truncated: false };
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  for await (const chunk of response.body) {
    const bytes = chunk as Uint8Array;
    if (size + bytes.length > limit) {
      chunks.push(bytes.subarray(0, limit - size));
      truncated = true;
      await response.body.cancel().catch(() => {});
      break;
    }
    chunks.push(bytes);
    size += bytes.length;
  }
  return { text: Buffer.concat(chunks).toString('utf8'), truncated };
}

/** JSON pretty-printed for the model; other text as it came. */
function successText(text: string, contentType: string | null): string {
  if (contentType?.includes('json')) {
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      // Fall through: not JSON after all.
    }
  }
  return text;
}

/** Calls the API with the exchanged token and turns every outcome into a tool result. */
export async function callUpstream(options: UpstreamCallOptions): Promise<UpstreamOutcome> {
  const { request, apiName } = options;
  const doFetch = options.fetch ?? fetch;
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
  let response: Response;
  let body: { text: string; truncated: boolean };
  try {
    // Named for the API, not its URL: the path holds the tool's arguments.
    ({ response, body } = await inClientSpan(
      `${request.method} ${apiName} API`,
      { 'gatehouse.api': apiName },
      async () => {
        const headers: Record<string, string> = {
          authorization: `Bearer ${options.accessToken}`,
          accept: 'application/json',
          ...(options.requestId ? { [REQUEST_ID_HEADER]: options.requestId } : {}),
          ...(request.body !== undefined ? { 'content-type': 'application/json' } : {}),
        };
        injectTraceContext(headers);
        const answer = await doFetch(request.url, {
          method: request.method,
          headers,
          body: request.body,
          redirect: 'manual',
          signal,
        });
        annotateSpan({ 'http.response.status_code': answer.status });
        return { response: answer, body: await readText(answer, MAX_RESULT_BYTES) };
      },
    ));
  } catch {
    if (timeout.aborted) {
      return {
        status: undefined,
        failure: 'timeout',
        result: errorResult(
          `The ${apiName} API did not answer within ${options.timeoutMs} ms. Try again later; if it keeps happening, tell the administrator.`,
        ),
      };
    }
    if (options.signal?.aborted) {
      return { status: undefined, failure: 'cancelled', result: errorResult('The request was cancelled.') };
    }
    return {
      status: undefined,
      failure: 'unreachable',
      result: errorResult(
        `The ${apiName} API could not be reached. Try again later; if it keeps happening, tell the administrator.`,
      ),
    };
  }
  if (response.status < 200 || response.status >= 300) {
    return {
      status: response.status,
      failure: 'status',
      result: errorResult(describeUpstreamFailure(apiName, response.status, body.text)),
    };
  }
  const text =
    body.text.length > 0
      ? successText(body.text, response.headers.get('content-type'))
      : `The ${apiName} API answered HTTP ${response.status} with no content.`;
  return {
    status: response.status,
    failure: undefined,
    result: {
      content: [
        {
          type: 'text',
          text: body.truncated
            ? `${text}\n[cut: the answer was longer than ${MAX_RESULT_BYTES} bytes]`
            : text,
        },
      ],
    },
  };
}
