/**
 * The language model behind `gatehouse agent <url> chat`, as the conversation sees it: whatever the
 * provider's protocol, a turn is the conversation so far and the tools on offer in, and the model's
 * text and the tool calls it chose out. Two protocols implement it: OpenAI-compatible chat
 * completions (openai-chat.ts: OpenAI, Ollama, vLLM, LM Studio) and Anthropic's Messages API
 * (anthropic-messages.ts).
 *
 * The API key is sent in a header and nowhere else: never in an error, a trace line or the output.
 */

/** A tool as offered to the model: the MCP tool's name, description and JSON Schema for its input. */
export interface ModelTool {
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
}

/** A tool call the model chose. `arguments` is as the model wrote it: JSON text, or an object. */
export interface ModelToolCall {
  id: string;
  name: string;
  arguments: string | Record<string, unknown>;
}

export type ChatMessage =
  | { role: 'user'; text: string }
  | { role: 'assistant'; text: string; toolCalls: ModelToolCall[] }
  | { role: 'tool'; callId: string; name: string; content: string; isError: boolean };

export interface ModelReply {
  text: string;
  toolCalls: ModelToolCall[];
}

export interface ChatModel {
  /** For messages: the protocol and the model's name. */
  readonly description: string;
  complete(
    system: string,
    messages: readonly ChatMessage[],
    tools: readonly ModelTool[],
  ): Promise<ModelReply>;
}

export type ModelApi = 'openai' | 'anthropic';

export interface ModelSettings {
  api: ModelApi;
  /** The API's base URL: `https://api.openai.com/v1`, `http://localhost:11434/v1`, `https://api.anthropic.com`. */
  url: string;
  model: string;
  /** The key, from the environment; absent for local servers that need none. */
  apiKey: string | undefined;
  /** The variable it came from, to say so. */
  keyEnv?: string | undefined;
  timeoutMs: number;
  /** With --trace: one line per exchange with the model, without headers. */
  trace?: ((line: string) => void) | undefined;
}

/** The model could not be asked, or answered something else than a reply. */
export class ModelError extends Error {
  override name = 'ModelError';
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `text` with the key, and anything that starts like it (a masked echo), replaced. */
export function withoutKey(text: string, key: string | undefined): string {
  if (!key) return text;
  const whole = text.split(key).join('[the key]');
  return key.length < 12
    ? whole
    : whole.replace(new RegExp(`${escapeRegExp(key.slice(0, 8))}\\S*`, 'g'), '[the key]');
}

/** How the key is got, for the person: the variable's name, never the value. */
export const keySource = (settings: ModelSettings) =>
  settings.apiKey ? `key from ${settings.keyEnv ?? 'the environment'}` : 'no key';

/** POSTs JSON to the model's API; a failure says what happened, never the key. */
export async function postJson(
  settings: ModelSettings,
  url: string,
  headers: Record<string, string>,
  body: unknown,
): Promise<Record<string, unknown>> {
  settings.trace?.(`→ model ${settings.api} POST ${url}`);
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(settings.timeoutMs),
      // The key is in a header: it must not follow a redirect to another host.
      redirect: 'error',
    });
  } catch (error) {
    const reason =
      (error as Error).name === 'TimeoutError'
        ? `no answer within ${settings.timeoutMs} ms`
        : (error as Error).message;
    throw new ModelError(`the model at ${url} cannot be reached: ${reason}`);
  }
  const text = await response.text();
  settings.trace?.(`← model ${response.status} (${text.length} bytes)`);
  if (!response.ok) {
    // Some APIs repeat the key (or part of it) in their error: never shown.
    const excerpt = withoutKey(text, settings.apiKey).replace(/\s+/g, ' ').slice(0, 300);
    const hint =
      response.status === 401 || response.status === 403
        ? ' (is the API key set, and the right one for this endpoint?)'
        : response.status === 404
          ? ' (is --model-url the API base, and --model a model it serves?)'
          : '';
    throw new ModelError(`the model answered ${response.status}${hint}: ${excerpt}`);
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed))
      return parsed as Record<string, unknown>;
  } catch {
    // Reported below.
  }
  throw new ModelError(`the model's answer is not a JSON object: ${text.slice(0, 200)}`);
}
