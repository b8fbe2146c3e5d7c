/**
 * Several instances of every component, as docs/deployment.md ("Several instances") describes: two
 * authorization servers on one PostgreSQL database (each with a data directory of its own, as on
 * two hosts, started together), two gateways, two MCP servers and two API servers, each pair behind a balancer that sends requests round robin and skips a killed instance
 * (test/scale-out/support/topology.ts). An agent's whole journey goes through the balancers, so
 * each step may land on either instance; the promises must hold in total:
 *
 * - onboarding, sign-in, consent, tool calls, refresh and step-up work whichever instance answers
 *   each step;
 * - kill -9 of one authorization server and one gateway mid-journey: the agent goes on, without
 *   signing in again, once the survivors are ready;
 * - a token revoked at either authorization server stops at both gateways within a second;
 * - the registration limit holds in total: N per window across both instances.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { type Agent, createAgent } from '../../src/agent/index.ts';
import { parseResult, readStore, storeFile, userAt } from '../agent/support.ts';
import { authorize, redeemCode } from '../helpers/oauth.ts';
import { skipWithoutPostgres } from '../helpers/postgres.ts';
import { rpc, until } from '../helpers/revocation.ts';
import { INSTANCES, Topology } from './support/topology.ts';

// Before any test is declared: the runner starts the file's tests once its first ones are in.
const skipPostgres = await skipWithoutPostgres();

/** Short, so that the journey's refresh happens within the test; long enough for a busy machine. */
const TTL_SECONDS = 4;
const REGISTRATIONS_PER_WINDOW = 8;
const REDIRECT = 'http://127.0.0.1/callback';

async function bearerToken(urls: { issuer: string; mcpUrl: string }) {
  const registered = await fetch(`${urls.issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ redirect_uris: [REDIRECT], application_type: 'native' }),
  });
  assert.equal(registered.status, 201);
  const clientId = String(((await registered.json()) as { client_id: string }).client_id);
  const result = await authorize({
    issuer: urls.issuer,
    clientId,
    redirectUri: REDIRECT,
    scope: 'stocks:read',
    resource: urls.mcpUrl,
  });
  const redeemed = await redeemCode(urls.issuer, {
    code: result.callback.searchParams.get('code')!,
    verifier: result.verifier,
    redirectUri: REDIRECT,
    clientId,
    resource: urls.mcpUrl,
  });
  return { token: String(redeemed.json.access_token), clientId };
}

const ready = async (url: string) => (await fetch(`${url}/readyz`)).status === 200;

describe('two of every component on one PostgreSQL database', { skip: skipPostgres }, () => {
  let topology: Topology;

  before(async () => {
    topology = await Topology.create({
      separateDataDirs: true,
      authorizationServer: {
        refreshTokens: { clients: { cimd: true, publicClients: true } },
        dynamicRegistration: {
          maxAccessTokenTtlSeconds: TTL_SECONDS,
          rateLimit: { max: REGISTRATIONS_PER_WINDOW, windowSeconds: 600 },
        },
      },
    });
    try {
      // Together, as a rolling deployment may: they agree on one key set and one schema.
      await topology.start({ together: true });
      for (const name of ['gateway', 'mcp-server'] as const) {
        for (let i = 0; i < INSTANCES; i += 1) {
          const url = topology.instanceUrl(name, i);
          await until(() => ready(url), `${name} #${i} is ready (it hears revocations)`, 10_000);
        }
      }
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${topology.recentLines()}`);
    }
  });

  after(async () => {
    await topology?.close();
  });

  const newAgent = (store = storeFile(), user = userAt()) => {
    const trace: string[] = [];
    const agent = createAgent({
      serverUrl: topology.urls.mcpUrl,
      storePath: store,
      openUrl: user.openUrl,
      trace: (line) => trace.push(line),
    });
    return { agent, store, user, trace };
  };
  const tokensOf = (store: string) =>
    Object.values(readStore(store).authorizationServers[topology.urls.issuer]!.tokens)[0]!;

  async function journey(agent: Agent) {
    const { stocks } = parseResult<{ stocks: Array<{ symbol: string }> }>(
      await agent.callTool('list_stocks'),
    );
    assert.ok(stocks.length > 0, 'stocks listed');
    const symbol = stocks[0]!.symbol;
    assert.equal(
      parseResult<{ symbol: string }>(await agent.callTool('get_stock', { symbol })).symbol,
      symbol,
    );
  }

  test('an agent onboards, signs in, calls tools, refreshes and steps up, each step at either instance', async () => {
    const before = Object.fromEntries(
      Object.entries(topology.balancers).map(([name, balancer]) => [name, [...balancer.served]]),
    );
    const { agent, store, user, trace } = newAgent();
    try {
      await journey(agent);
      await journey(agent);
      assert.equal(user.plays.length, 1, 'one sign-in');
      const first = tokensOf(store);
      assert.ok(first.refresh_token, 'a refresh token');

      await sleep(TTL_SECONDS * 1000 + 1000);
      await journey(agent);
      assert.equal(user.plays.length, 1, 'refreshed without the user');
      assert.notEqual(tokensOf(store).access_token, first.access_token, 'a new access token');
      assert.match(trace.join('\n'), /grant_type=refresh_token/);

      // Step-up: a write tool needs stocks:trade. The browser session (its cookie signed by one
      // instance, its row in the database) holds at whichever instance answers: consent only.
      const order = parseResult<{ status: string; quantity: number }>(
        await agent.callTool('place_order', { symbol: 'SAP', side: 'buy', quantity: 1 }),
      );
      assert.equal(order.status, 'accepted');
      assert.equal(user.plays.length, 2, 'one more authorization for the new scope');
      assert.deepEqual(user.plays[1]!.pages, ['consent'], 'still signed in: consent only');
    } finally {
      await agent.close();
    }
    // Round robin spreads the journey: every instance of every component served part of it.
    for (const [name, balancer] of Object.entries(topology.balancers)) {
      const served = balancer.served.map((count, i) => count - before[name]![i]!);
      for (const [i, count] of served.entries())
        assert.ok(count > 0, `${name} #${i} served part of the journey`);
    }
  });

  test('a token revoked at either authorization server stops at both gateways within a second', async () => {
    for (let at = 0; at < INSTANCES; at += 1) {
      // A plain bearer token (the agent's own are DPoP-bound): registered, authorized and redeemed
      // through the balancer, so at either instance.
      const { token, clientId } = await bearerToken(topology.urls);
      const gateways = [0, 1].map((i) => topology.instanceUrl('gateway', i));
      for (const base of gateways) {
        // Twice each: the second answer is from the gateway's cache, which the revocation must clear.
        assert.equal((await rpc(base, token)).status, 200);
        assert.equal((await rpc(base, token)).status, 200);
      }
      const revoked = await fetch(`${topology.instanceUrl('authorization-server', at)}/revoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token, client_id: clientId }),
      });
      assert.equal(revoked.status, 200);
      const took = await Promise.all(
        gateways.map((base) =>
          until(async () => (await rpc(base, token)).status === 401, `refused at ${base}`, 3000),
        ),
      );
      for (const [i, ms] of took.entries())
        assert.ok(ms < 1000, `revoked at #${at}: gateway #${i} took ${ms} ms`);
    }
  });

  test('kill -9 of one authorization server and one gateway mid-journey: the agent goes on without signing in again', async () => {
    const { agent, user } = newAgent();
    try {
      await journey(agent);
      await topology.instances['authorization-server'][0]!.stop('SIGKILL');
      await topology.instances.gateway[0]!.stop('SIGKILL');
      // The survivors' revocation listeners reconnect to the live authorization server; until then
      // they fail closed (their readiness says so), as a balancer's health check would see.
      for (const name of ['gateway', 'mcp-server'] as const) {
        const survivors = name === 'gateway' ? [1] : [0, 1];
        for (const i of survivors) {
          const url = topology.instanceUrl(name, i);
          await until(() => ready(url), `${name} #${i} hears revocations again`, 10_000);
        }
      }
      for (let call = 0; call < 3; call += 1) await journey(agent);
      assert.equal(user.plays.length, 1, 'no second sign-in: the grant lives in the shared database');

      // Back again: the restarted instances take their share.
      await topology.instances['authorization-server'][0]!.start();
      await topology.instances.gateway[0]!.start();
      await until(() => ready(topology.instanceUrl('gateway', 0)), 'the restarted gateway is ready', 10_000);
      const served = [...topology.balancers.gateway.served];
      for (let call = 0; call < 2; call += 1) await journey(agent);
      assert.ok(topology.balancers.gateway.served[0]! > served[0]!, 'the restarted gateway serves again');
      assert.equal(user.plays.length, 1);
    } finally {
      await agent.close();
    }
  });

  test('the registration limit holds in total across both authorization servers', async () => {
    const register = () =>
      fetch(`${topology.urls.issuer}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ redirect_uris: [REDIRECT], application_type: 'native' }),
      });
    let created = 0;
    for (let i = 0; i < REGISTRATIONS_PER_WINDOW + 4; i += 1) {
      const status = (await register()).status;
      if (status === 201) created += 1;
      else assert.equal(status, 429);
    }
    assert.ok(created < REGISTRATIONS_PER_WINDOW, 'the agents above registered in the same window');
    // Every registration of the window, by the agents above and here, is a row: exactly the limit.
    const client = new pg.Client({ connectionString: topology.database.url });
    await client.connect();
    try {
      const rows = await client.query<{ count: string }>(
        "SELECT count(*) FROM oidc_models WHERE model = 'Client'",
      );
      assert.equal(Number(rows.rows[0]!.count), REGISTRATIONS_PER_WINDOW);
    } finally {
      await client.end();
    }
  });
});
