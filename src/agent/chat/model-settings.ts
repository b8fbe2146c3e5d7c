/**
 * Which model `chat` talks to, from the command line first and the agent's configuration file
 * (`"model": { "api", "url", "name", "keyEnv" }`) second; the key only from the environment
 * variable they name (default GATEHOUSE_AGENT_MODEL_KEY), so that it is in neither.
 */
import { AgentError } from '../errors.ts';
import { anthropicMessagesModel } from './anthropic-messages.ts';
import type { ChatModel, ModelApi, ModelSettings } from './model.ts';
import { openAiChatModel } from './openai-chat.ts';

export const DEFAULT_MODEL_KEY_ENV = 'GATEHOUSE_AGENT_MODEL_KEY';
const DEFAULT_TIMEOUT_MS = 120_000;

export interface ModelChoice {
  api?: string | undefined;
  url?: string | undefined;
  name?: string | undefined;
  keyEnv?: string | undefined;
}

export function modelSettingsFrom(
  flags: ModelChoice,
  config: ModelChoice | undefined,
  env: NodeJS.ProcessEnv,
  trace?: (line: string) => void,
): ModelSettings {
  const api = flags.api ?? config?.api ?? 'openai';
  if (api !== 'openai' && api !== 'anthropic')
    throw new AgentError('usage', `--model-api must be openai or anthropic, not "${api}"`, undefined);
  const url = flags.url ?? config?.url;
  const model = flags.name ?? config?.name;
  if (!url || !model) {
    throw new AgentError(
      'usage',
      `chat needs a model: ${url ? '' : '--model-url (the API base) '}${model ? '' : '--model (its name)'}`.trim(),
      'e.g. --model-url https://api.openai.com/v1 --model gpt-4.1, or --model-url http://localhost:11434/v1 --model llama3.1 (Ollama), or --model-api anthropic --model-url https://api.anthropic.com --model claude-sonnet-4-5; the key goes in GATEHOUSE_AGENT_MODEL_KEY.',
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new AgentError('usage', `--model-url ${url} is not an http(s) URL`, undefined);
  }
  // The conversation and the key cross this connection: https, or plain http to this machine only.
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(parsed.hostname);
  if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && loopback)) {
    throw new AgentError(
      'usage',
      `--model-url ${url}: only https, or http on localhost, 127.0.0.1 or [::1]`,
      'The conversation and the API key would travel in clear.',
    );
  }
  const keyEnv = flags.keyEnv ?? config?.keyEnv ?? DEFAULT_MODEL_KEY_ENV;
  return {
    api: api as ModelApi,
    url,
    model,
    keyEnv,
    apiKey: env[keyEnv] || undefined,
    timeoutMs: DEFAULT_TIMEOUT_MS,
    trace,
  };
}

export function chatModel(settings: ModelSettings): ChatModel {
  return settings.api === 'anthropic' ? anthropicMessagesModel(settings) : openAiChatModel(settings);
}
