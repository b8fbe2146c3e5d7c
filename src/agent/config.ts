/**
 * The agent's optional configuration file (`<agent home>/agent.json`, or `--config FILE`): clients
 * pre-registered for it at given authorization servers, and its metadata document URL.
 *
 *   {
 *     "clientMetadataUrl": "https://agent.example.com/oauth/client.json",
 *     "model": { "api": "openai", "url": "http://localhost:11434/v1", "name": "llama3.1", "keyEnv": "OPENAI_API_KEY" },
 *     "clients": {
 *       "https://auth.example.com": { "clientId": "partner-agent", "clientSecret": "…" },
 *       "http://localhost:9000": { "clientId": "example-workload", "privateKeyFile": "data/secrets/example-workload.private-key.json" }
 *     }
 *   }
 *
 * Keys of `clients` are issuer identifiers: the agent uses an entry only with that authorization server.
 * A relative `privateKeyFile` is relative to the configuration file.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { AgentError } from './errors.ts';
import type { ClientCredentialsOption } from './index.ts';
import { agentHome } from './token-store.ts';

export interface AgentConfig {
  clientMetadataUrl?: string;
  clients: Record<string, ClientCredentialsOption>;
  /** The model of `chat` (chat/model-settings.ts); the key is never here, only the variable's name. */
  model?: { api?: string; url?: string; name?: string; keyEnv?: string };
}

export const defaultConfigPath = (env: NodeJS.ProcessEnv = process.env) =>
  path.join(agentHome(env), 'agent.json');

const isString = (value: unknown): value is string => typeof value === 'string' && value.length > 0;

/** Reads the configuration; a missing default file is an empty configuration, a missing named one an error. */
export function loadAgentConfig(file: string, explicit: boolean): AgentConfig {
  if (!existsSync(file)) {
    if (explicit) throw new AgentError('usage', `--config ${file}: no such file`, undefined);
    return { clients: {} };
  }
  const invalid = (what: string) =>
    new AgentError(
      'usage',
      `${file}: ${what}`,
      'See the format at the top of src/agent/config.ts or docs/clients.md.',
    );
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw invalid('not valid JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid('must be a JSON object');
  const { clientMetadataUrl, clients = {}, model, ...unknown } = raw as Record<string, unknown>;
  const extra = Object.keys(unknown)[0];
  if (extra) throw invalid(`unknown key "${extra}"`);
  if (clientMetadataUrl !== undefined && !isString(clientMetadataUrl))
    throw invalid('clientMetadataUrl must be a URL');
  if (typeof clients !== 'object' || clients === null || Array.isArray(clients)) {
    throw invalid('clients must map issuer URLs to { clientId, clientSecret?, privateKeyFile? }');
  }
  const parsed: Record<string, ClientCredentialsOption> = {};
  for (const [issuer, entry] of Object.entries(clients as Record<string, unknown>)) {
    const { clientId, clientSecret, privateKeyFile } = (entry ?? {}) as Record<string, unknown>;
    if (!isString(clientId)) throw invalid(`clients["${issuer}"].clientId is required`);
    if (clientSecret !== undefined && !isString(clientSecret))
      throw invalid(`clients["${issuer}"].clientSecret must be a string`);
    if (privateKeyFile !== undefined && !isString(privateKeyFile))
      throw invalid(`clients["${issuer}"].privateKeyFile must be a path`);
    parsed[issuer] = {
      clientId,
      ...(clientSecret ? { clientSecret } : {}),
      ...(privateKeyFile ? { privateKeyFile: path.resolve(path.dirname(file), privateKeyFile) } : {}),
    };
  }
  let chosenModel: AgentConfig['model'];
  if (model !== undefined) {
    if (typeof model !== 'object' || model === null || Array.isArray(model))
      throw invalid('model must be { api?, url?, name?, keyEnv? }');
    const { api, url, name, keyEnv, ...other } = model as Record<string, unknown>;
    const stray = Object.keys(other)[0];
    if (stray)
      throw invalid(
        `model: unknown key "${stray}" (the key itself goes in the environment: keyEnv names the variable)`,
      );
    for (const [key, value] of Object.entries({ api, url, name, keyEnv }))
      if (value !== undefined && !isString(value)) throw invalid(`model.${key} must be a string`);
    chosenModel = {
      ...(api ? { api: api as string } : {}),
      ...(url ? { url: url as string } : {}),
      ...(name ? { name: name as string } : {}),
      ...(keyEnv ? { keyEnv: keyEnv as string } : {}),
    };
  }
  return {
    ...(clientMetadataUrl ? { clientMetadataUrl } : {}),
    clients: parsed,
    ...(chosenModel ? { model: chosenModel } : {}),
  };
}
