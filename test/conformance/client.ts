/**
 * The official MCP conformance suite's client command, played by this project's agent:
 *
 *   conformance client --command "node test/conformance/client.ts" --scenario auth/dpop
 *
 * The suite starts its mock MCP and authorization servers, then runs this file with the MCP URL
 * appended, `MCP_CONFORMANCE_SCENARIO` set and, for scenarios with pre-registered credentials,
 * `MCP_CONFORMANCE_CONTEXT` (JSON). The agent runs as a user would use it: connect (401 →
 * discovery → a client → sign-in), list the tools, call the first one, call it again. The mock
 * authorization server approves at once, so the "browser" follows the authorization redirect to
 * the agent's loopback callback (a scenario's context may name the tool calls to make instead). Exit code 0 when everything worked, 1 otherwise (negative
 * scenarios expect the agent to refuse; the suite judges by what its servers saw).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Tool } from '@modelcontextprotocol/client';
import { exportJWK, importPKCS8 } from 'jose';
import { type AgentOptions, createAgent } from '../../src/agent/index.ts';

/** Scenarios whose mock server answers tools/list only (a tools/call would fail the run). */
const LIST_ONLY = new Set(['json-schema-ref-no-deref']);

/** The suite's mock authorization server accepts this URL as a client_id without fetching it. */
const CIMD_CLIENT_METADATA_URL = 'https://conformance-test.local/client-metadata.json';

interface Context {
  name: string;
  client_id?: string;
  client_secret?: string;
  private_key_pem?: string;
  signing_algorithm?: string;
  /** The calls a scenario wants made (http-custom-headers), instead of the first tool twice. */
  toolCalls?: Array<{ name: string; arguments?: Record<string, unknown> }>;
}

/** The browser: follows the authorization server's redirects to the agent's loopback callback. */
async function playBrowser(url: string): Promise<void> {
  let next = url;
  for (let hop = 0; hop < 10; hop += 1) {
    const response = await fetch(next, { redirect: 'manual' });
    await response.text();
    const location = response.headers.get('location');
    if (response.status < 300 || response.status >= 400 || !location) return;
    next = new URL(location, next).href;
  }
  throw new Error('too many redirects');
}

/** Arguments for a tool from its input schema: a number, string or boolean for each property it names. */
function sampleArguments(tool: Tool): Record<string, unknown> {
  const properties = (tool.inputSchema.properties ?? {}) as Record<string, { type?: string }>;
  const samples: Record<string, unknown> = { number: 2, integer: 3, string: 'conformance', boolean: true };
  return Object.fromEntries(
    Object.entries(properties)
      .filter(([, schema]) => schema.type !== undefined && schema.type in samples)
      .map(([name, schema]) => [name, samples[schema.type!]]),
  );
}

/** json-schema-2020-12-preservation: hand a tool's input schema back, as received, to the echo tool. */
function schemaEcho(tools: Tool[]) {
  const focal = tools.find((tool) => tool.name === 'json_schema_2020_12_tool');
  return focal ? [{ name: 'json_schema_echo', arguments: { schema: focal.inputSchema } }] : [];
}

async function credentialsFrom(context: Context, home: string): Promise<Partial<AgentOptions>> {
  if (!context.client_id) return {};
  if (context.private_key_pem) {
    const alg = context.signing_algorithm ?? 'ES256';
    const key = await importPKCS8(context.private_key_pem, alg, { extractable: true });
    const file = path.join(home, 'private-key.json');
    writeFileSync(file, JSON.stringify({ ...(await exportJWK(key)), alg }), { mode: 0o600 });
    return { clientId: context.client_id, privateKeyFile: file };
  }
  const workload = context.name.startsWith('auth/client-credentials');
  return { clientId: context.client_id, clientSecret: context.client_secret, workload };
}

async function main(): Promise<number> {
  const serverUrl = process.argv.at(-1);
  if (!serverUrl) throw new Error('the MCP server URL is missing');
  const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? '';
  const context = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT ?? '{}') as Context;
  const home = mkdtempSync(path.join(tmpdir(), 'gatehouse-conformance-'));
  const agent = createAgent({
    serverUrl,
    storePath: path.join(home, 'credentials.json'),
    openUrl: playBrowser,
    clientMetadataUrl: CIMD_CLIENT_METADATA_URL,
    ...(await credentialsFrom(context, home)),
    authorizationTimeoutMs: 10_000,
    requestTimeoutMs: 10_000,
    trace: process.env.GATEHOUSE_CONFORMANCE_TRACE ? (line) => process.stderr.write(`${line}\n`) : undefined,
    note: (message) => process.stderr.write(`${message}\n`),
  });
  try {
    await agent.connect();
    const tools = await agent.listTools();
    // For some scenarios listing is the test (a schema with a network $ref the agent must not fetch).
    const calls = LIST_ONLY.has(scenario)
      ? []
      : scenario === 'json-schema-2020-12-preservation'
        ? schemaEcho(tools)
        : (context.toolCalls ??
          // Twice: the migration scenario moves to another authorization server after the first call.
          (tools[0]
            ? [tools[0], tools[0]].map((tool) => ({ name: tool.name, arguments: sampleArguments(tool) }))
            : []));
    for (const call of calls) await agent.callTool(call.name, call.arguments ?? {});
    process.stderr.write(`${scenario}: done\n`);
    return 0;
  } finally {
    await agent.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`conformance client: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
