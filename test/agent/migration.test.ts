/**
 * SEP-2352 (MCP 2026-07-28): the MCP server moves to another authorization server. An agent signs
 * in at the first one and calls a tool; then the MCP server, the gateway and the APIs are started
 * again configured for a second authorization server (same public URLs), and the first token is
 * revoked. The agent's next call is refused; it reads the Protected Resource Metadata again (not
 * what it discovered before), finds the new issuer, registers there (its first registration is the
 * old server's and is never shown to the new one), signs the user in there, and the call succeeds.
 * Credentials given on the command line (a workload's) belong to the first server and are not
 * offered to the second.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AgentError, createAgent } from '../../src/agent/index.ts';
import { startApis } from '../../src/apis/server.ts';
import { startAuthorizationServer } from '../../src/authorization-server/server.ts';
import { startGateway } from '../../src/gateway/server.ts';
import { loopbackStackSections, loopbackUrls, type StackPorts } from '../../src/launcher/loopback-config.ts';
import { startMcpServer } from '../../src/mcp-server/server.ts';
import type { RunningComponent } from '../../src/shared/component.ts';
import { type LoadedConfig, parseConfig } from '../../src/shared/config/load.ts';
import { createLogger } from '../../src/shared/logging.ts';
import { basic, postForm } from '../helpers/oauth.ts';
import { freePort } from '../helpers/stack.ts';
import { parseResult, readStore, storeFile, userAt } from './support.ts';

/** The configuration of the whole stack for the authorization server on `asPort`, state in `dataDir`. */
function stackFor(ports: StackPorts, dataDir: string): LoadedConfig {
  const sections = loopbackStackSections(ports);
  const config = parseConfig({
    dataDir,
    logLevel: 'debug',
    authorizationServer: {
      ...sections.authorizationServer,
      login: { perEmail: { max: 1000, windowSeconds: 60 }, perAddress: { max: 1000, windowSeconds: 60 } },
    },
    gateway: sections.gateway,
    mcpServer: sections.mcpServer,
    apis: sections.apis,
  });
  return { config, dataDir, file: undefined };
}

describe('the MCP server moves to another authorization server (SEP-2352)', () => {
  const logs: string[] = [];
  /** Each authorization server's own log lines, for its audit events. */
  const serverLogs: string[][] = [[], []];
  const logger = (name: string, sink = logs) =>
    createLogger(name, { level: 'debug', write: (line) => sink.push(line) });
  const dataDirs = [0, 1].map(() => mkdtempSync(path.join(tmpdir(), 'gatehouse-migration-')));
  let first: LoadedConfig;
  let second: LoadedConfig;
  const authorizationServers: Array<{ close(): Promise<void> }> = [];
  let protectedSide: RunningComponent[] = [];
  let mcpUrl: string;

  /** The APIs, the MCP server and the gateway (in that order), for one authorization server. */
  async function startProtectedSide(loaded: LoadedConfig) {
    protectedSide = [
      await startApis(loaded, { logger: logger('apis') }),
      await startMcpServer(loaded, { logger: logger('mcp-server') }),
      await startGateway(loaded, { logger: logger('gateway') }),
    ];
  }
  async function stopProtectedSide() {
    for (const component of protectedSide.reverse()) await component.close();
    protectedSide = [];
  }

  before(async () => {
    const shared = { gateway: await freePort(), mcpServer: await freePort(), apis: await freePort() };
    first = stackFor({ ...shared, authorizationServer: await freePort() }, dataDirs[0]!);
    second = stackFor({ ...shared, authorizationServer: await freePort() }, dataDirs[1]!);
    mcpUrl = loopbackUrls({ ...shared, authorizationServer: 0 }).mcpUrl;
    for (const [index, loaded] of [first, second].entries()) {
      authorizationServers.push(
        await startAuthorizationServer(loaded, { logger: logger('authorization-server', serverLogs[index]) }),
      );
    }
    await startProtectedSide(first);
  });
  after(async () => {
    await stopProtectedSide();
    for (const server of authorizationServers) await server.close();
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  });

  const issuerOf = (loaded: LoadedConfig) => loaded.config.authorizationServer.issuer;
  /** The audit events of one authorization server (0: the first, 1: the second). */
  const audit = (server: number, event: string) =>
    serverLogs[server]!.map((line) => JSON.parse(line) as Record<string, unknown>).filter(
      (entry) => entry.message === 'audit' && entry.event === event,
    );

  test('a refused token sends the agent back to the metadata, and to the new server', async () => {
    const [oldIssuer, newIssuer] = [issuerOf(first), issuerOf(second)];
    const store = storeFile();
    const user = userAt();
    const trace: string[] = [];
    const notes: string[] = [];
    const agent = createAgent({
      serverUrl: mcpUrl,
      storePath: store,
      openUrl: user.openUrl,
      trace: (line) => trace.push(line),
      note: (message) => notes.push(message),
    });
    try {
      parseResult(await agent.callTool('list_stocks'));
      assert.equal(agent.identity()?.issuer, oldIssuer);
      const oldClient = agent.identity()!.clientId;
      const oldTokens = Object.values(readStore(store).authorizationServers[oldIssuer]!.tokens)[0]!;

      // The operator moves the MCP server to the second authorization server and revokes the old token.
      await stopProtectedSide();
      await startProtectedSide(second);
      const revoked = await postForm(`${oldIssuer}/revoke`, {
        token: oldTokens.access_token,
        token_type_hint: 'access_token',
        client_id: oldClient,
      });
      assert.equal(revoked.status, 200);
      const gatewaySecret = readFileSync(
        path.join(first.dataDir, 'secrets/gatehouse-gateway.secret'),
        'utf8',
      ).trim();
      const introspection = await postForm(
        `${oldIssuer}/introspect`,
        { token: oldTokens.access_token },
        { authorization: basic('gatehouse-gateway', gatewaySecret) },
      );
      assert.equal(introspection.json.active, false, 'the old token is revoked');

      const before = trace.length;
      parseResult(await agent.callTool('list_stocks'));
      const identity = agent.identity()!;
      assert.equal(identity.issuer, newIssuer, 'signed in at the new authorization server');
      assert.equal(identity.clientKind, 'dynamic');
      assert.notEqual(identity.clientId, oldClient);
      assert.equal(user.plays.length, 2, 'one sign-in at each server');
      assert.equal(new URL(user.plays[1]!.callback.searchParams.get('iss')!).origin, newIssuer);

      const afterSwitch = trace.slice(before).join('\n');
      assert.match(afterSwitch, /HTTP ← 401 Unauthorized for POST .*\/mcp/);
      assert.match(
        afterSwitch,
        /GET .*\/\.well-known\/oauth-protected-resource\/mcp/,
        'the metadata is read again',
      );
      assert.ok(afterSwitch.includes(`POST ${newIssuer}/reg`), 'registered at the new server');
      assert.ok(!afterSwitch.includes(oldClient), 'the old client_id is never sent anywhere');
      assert.ok(!afterSwitch.includes(`${oldIssuer}/`), 'nothing more is asked of the old server');
      assert.match(
        notes.join('\n'),
        new RegExp(`now names the authorization server ${newIssuer.replace(/[.]/g, '\\.')}`),
      );

      // The store keeps each server's registration under its issuer; the refused token is gone.
      const stored = readStore(store).authorizationServers;
      assert.equal(stored[oldIssuer]?.registration?.client_id, oldClient);
      assert.deepEqual(stored[oldIssuer]?.tokens, {}, 'the refused token is forgotten');
      assert.equal(stored[newIssuer]?.registration?.client_id, identity.clientId);
      assert.equal(Object.keys(stored[newIssuer]?.tokens ?? {}).length, 1);
      assert.equal(audit(0, 'client.registered').length, 1, 'one registration at the first server');
      assert.equal(audit(1, 'client.registered').length, 1, 'and one at the second');
      assert.ok(
        audit(1, 'token.issued').every((entry) => entry.client_id !== oldClient),
        'the second server never issued anything to the first one’s client',
      );
    } finally {
      await agent.close();
    }
  });

  test('credentials given on the command line stay with the first server', async () => {
    await stopProtectedSide();
    await startProtectedSide(first);
    const [oldIssuer, newIssuer] = [issuerOf(first), issuerOf(second)];
    const agent = createAgent({
      serverUrl: mcpUrl,
      storePath: storeFile(),
      clientId: 'example-workload',
      privateKeyFile: path.join(first.dataDir, 'secrets/example-workload.private-key.json'),
      openUrl: () => {
        throw new Error('a workload never opens a browser');
      },
    });
    try {
      parseResult(await agent.callTool('list_stocks'));
      assert.equal(agent.identity()?.issuer, oldIssuer);
      const registeredBefore = audit(1, 'client.registered').length;
      await stopProtectedSide();
      await startProtectedSide(second);
      await assert.rejects(
        agent.callTool('list_stocks'),
        (error: unknown) =>
          error instanceof AgentError &&
          error.kind === 'authorization' &&
          error.message.includes(`no pre-registered client for ${newIssuer}`),
      );
      assert.ok(
        audit(1, 'token.issued').every((entry) => entry.client_id !== 'example-workload'),
        'the new server never saw the first one’s client assertion',
      );
      assert.equal(
        audit(1, 'client.registered').length,
        registeredBefore,
        'and the workload did not register',
      );
    } finally {
      await agent.close();
    }
  });
});
