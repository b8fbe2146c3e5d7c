/**
 * The tool catalogue: tools come from configuration, not code. Each is compiled once, at start, into
 * a definition the per-request MCP server instances share: its JSON Schema input as the SDK's
 * Standard Schema (`fromJsonSchema`, AJV on Node), the upstream API it calls and the scopes it needs.
 *
 * Mistakes that would only show at call time (a schema that does not compile, a path argument the
 * schema does not require) are configuration errors at start.
 */
import {
  fromJsonSchema,
  type JsonSchemaType,
  type StandardSchemaWithJSON,
  type ToolAnnotations,
} from '@modelcontextprotocol/server';
import { ConfigError } from '../../shared/config/load.ts';
import type { ToolConfig } from '../../shared/config/schema.ts';
import type { ResolvedToolConfig, UpstreamApi } from '../settings.ts';
import { pathParameters } from './upstream-call.ts';

export type ToolArguments = Record<string, unknown>;

export interface ToolDefinition {
  name: string;
  title: string | undefined;
  description: string;
  inputSchema: StandardSchemaWithJSON<ToolArguments, ToolArguments>;
  annotations: ToolAnnotations;
  /** MCP scopes the token must carry; checked before any token exchange or upstream call. */
  scopes: string[];
  /** API scopes the exchanged token is asked for: exactly these (settings.ts resolves the default). */
  apiScopes: string[];
  /** Every call runs only once the user approved it (approval-client.ts, tool-call.ts). */
  approval: 'required' | 'none';
  api: UpstreamApi;
  method: ToolConfig['method'];
  path: string;
}

function compileInputSchema(tool: ToolConfig, key: string): ToolDefinition['inputSchema'] {
  const schema = tool.inputSchema;
  if (schema.type !== 'object') {
    throw new ConfigError(`${key}.inputSchema: must be a JSON Schema with "type": "object"`);
  }
  const required = new Set(Array.isArray(schema.required) ? (schema.required as unknown[]) : []);
  for (const name of pathParameters(tool.path)) {
    if (!required.has(name)) {
      throw new ConfigError(
        `${key}.path: "{${name}}" must be a required property of inputSchema (a path cannot have a hole)`,
      );
    }
  }
  try {
    return fromJsonSchema<ToolArguments>(schema as JsonSchemaType);
  } catch (error) {
    throw new ConfigError(`${key}.inputSchema: not a valid JSON Schema (${(error as Error).message})`);
  }
}

/** Compiles the configured tools; `apis` are the resolved `mcpServer.apis`. */
export function buildCatalogue(
  tools: ResolvedToolConfig[],
  apis: Map<string, UpstreamApi>,
): ToolDefinition[] {
  return tools.map((tool, i) => {
    const key = `mcpServer.tools.${i}`;
    const api = apis.get(tool.api);
    if (!api) throw new ConfigError(`${key}.api: "${tool.api}" is not a key of mcpServer.apis`);
    return {
      name: tool.name,
      title: tool.title,
      description: tool.description,
      inputSchema: compileInputSchema(tool, key),
      annotations: { ...(tool.title ? { title: tool.title } : {}), ...tool.annotations },
      scopes: [...new Set(tool.scopes)],
      apiScopes: [...new Set(tool.apiScopes)],
      approval: tool.approval,
      api,
      method: tool.method,
      path: tool.path,
    };
  });
}

/** Validates arguments the way the SDK will on `tools/call`: the parsed value, or the problems. */
export async function validateArguments(
  tool: ToolDefinition,
  args: unknown,
): Promise<{ ok: true; value: ToolArguments } | { ok: false; issues: string[] }> {
  const result = await tool.inputSchema['~standard'].validate(args ?? {});
  if (result.issues) return { ok: false, issues: result.issues.map((issue) => issue.message) };
  return { ok: true, value: result.value };
}
