/**
 * SIGTERM: requests in flight drain, with 0 acknowledged writes lost.
 *
 * Each component in turn (gateway, MCP server, APIs, authorization server) gets SIGTERM while
 * requests are in flight at it, and while eight agents keep calling tools through the gateway.
 * "In flight" is made certain: six requests to the component have sent their headers and half their
 * body when the signal comes, and send the rest only once the component has begun to drain:
 *
 *   gateway               tool calls from agents (their opaque tokens)
 *   MCP server            tool calls sent to it directly with the phantom JWT the gateway would
 *                         forward (obtained by introspecting as the gateway)
 *   APIs                  stock orders sent to it directly with a token exchanged for the stocks
 *                         API (as the MCP server does it)
 *   authorization server  registrations, token requests (authorization codes) and consent answers,
 *                         while four writers run whole onboardings (support/writes.ts)
 *
 * Promises: every request in flight completes with its real answer (a tool result, 201, 200, 303);
 * the component reports `cut: 0` in its drain summary and exits 0; after a restart every agent's
 * calls succeed again; and every write the authorization server acknowledged (in flight or from the
 * writers) is still there after its restart.
 */
import {
  accessTokenOf,
  authorizationRequest,
  codeOf,
  type Discovery,
  discover,
  FORM,
  McpAgent,
  type McpMethod,
  mcpHeaders,
  onboard,
  playUser,
  REDIRECT_URI,
  register,
  registrationBody,
  registrationOf,
  rpcBody,
  tokenRequestBody,
} from '../support/agent.ts';
import { Browser, keepAliveAgent, type Outcome, type SlowRequest, slowRequest } from '../support/http.ts';
import { phantomJwt, stocksApiToken } from '../support/internal.ts';
import { Addresses, judgeValid, Tally } from '../support/outcomes.ts';
import {
  type Check,
  check,
  pool,
  type Scenario,
  type ScenarioContext,
  type ScenarioReport,
  sleep,
} from '../support/scenario.ts';
import { APPROVED_DOMAIN, type ComponentName, LOAD_TEST_DOMAIN, Stack } from '../support/stack.ts';
import { controlLedger, describeVerification, Ledger, verifyLedger, writeFlow } from '../support/writes.ts';

const CALLERS = 8;
const IN_FLIGHT = 6;
const WRITERS = 4;
const ROUNDS: ComponentName[] = ['gateway', 'mcp-server', 'apis', 'authorization-server'];

export const scenario: Scenario = {
  name: 'sigterm',
  title: 'SIGTERM to each component with requests in flight',
  budgetSeconds: 150,
  run,
};

interface InFlight {
  what: string;
  request: SlowRequest;
  /** True when the answer is the one the request was for; may record an acknowledged write. */
  accept(outcome: Outcome): boolean;
}

interface Timed {
  sentAt: number;
  ok: boolean;
  label: string;
}

interface Context {
  stack: Stack;
  discovery: Discovery;
  agents: McpAgent[];
  machines: Addresses;
  ledger: Ledger;
  users: { next: number };
}

const email = (context: Context, prefix: string) => `${prefix}-${context.users.next++}@${LOAD_TEST_DOMAIN}`;

async function run({ dir, progress }: ScenarioContext): Promise<ScenarioReport> {
  const stack = new Stack(dir, [APPROVED_DOMAIN]);
  const checks: Check[] = [];
  const numbers: Array<[string, string | number]> = [];
  try {
    progress('starting the stack');
    await stack.start();
    const machines = new Addresses(5);
    const users = { next: 0 };
    const mcpUrl = stack.urls.mcpUrl;
    const agents = await pool(Array.from({ length: CALLERS }), 4, async (_, i) => {
      const onboarded = await onboard(mcpUrl, machines.next(), `caller-${users.next++}@${LOAD_TEST_DOMAIN}`, {
        scope: 'stocks:read stocks:trade',
      });
      return new McpAgent(
        onboarded.address,
        mcpUrl,
        i % 2 === 0 ? '2025-11-25' : '2026-07-28',
        onboarded.accessToken,
        onboarded.agent,
      );
    });
    const discovery = await discover(mcpUrl, keepAliveAgent(machines.next()));
    const context: Context = { stack, discovery, agents, machines, ledger: new Ledger(), users };

    for (const component of ROUNDS) {
      const result = await round(context, component, progress);
      checks.push(...result.checks);
      numbers.push(...result.numbers);
    }

    progress(`checking ${context.ledger.describe()} acknowledged by the authorization server`);
    const verification = await verifyLedger(stack, discovery, context.ledger);
    const control = await verifyLedger(
      stack,
      discovery,
      await controlLedger(discovery, machines.next(), context.ledger),
    );
    checks.push(
      check(
        '0 acknowledged writes lost (SIGTERM to the authorization server, then a restart)',
        verification.lost === 0 &&
          context.ledger.registrations.length > 0 &&
          context.ledger.consents.length > 0,
        describeVerification(verification),
      ),
      check(
        'the check finds writes that are not there (control: a deleted client, a consent never given, a token never issued)',
        control.lost === 3,
        `${control.lost} of 3 reported missing`,
      ),
    );
    numbers.push([
      'authorization server writes acknowledged / still there',
      `${context.ledger.describe()} / ${describeVerification(verification)}`,
    ]);
    for (const agent of agents) agent.close();
    return { checks, numbers, deviations: stack.deviations };
  } finally {
    await stack.close();
  }
}

async function round(context: Context, component: ComponentName, progress: (line: string) => void) {
  const { stack, agents } = context;
  const target = stack.components[component];
  const background: Timed[] = [];
  let stop = false;
  const callers = agents.map(async (agent, i) => {
    let turn = i;
    while (!stop) {
      const method: McpMethod = turn++ % 2 === 0 ? 'tools/list' : 'tools/call';
      const sentAt = Date.now();
      const verdict = judgeValid(await agent.call(method), method);
      background.push({ sentAt, ok: verdict.ok, label: verdict.label });
      if (!verdict.ok) await sleep(100);
    }
  });
  const writers =
    component === 'authorization-server'
      ? Array.from({ length: WRITERS }, async () => {
          while (!stop) {
            await writeFlow(
              context.discovery,
              context.machines.next(),
              email(context, 'writer'),
              context.ledger,
            );
            if (!target.running) await sleep(100);
          }
        })
      : [];

  const inFlight = await prepareInFlight(context, component);
  await Promise.all(inFlight.map((request) => request.request.started));
  await sleep(300);
  const signalledAt = Date.now();
  const draining = target.waitForLine(/SIGTERM: finishing requests in flight/, 10_000, 'the drain to begin');
  target.child!.kill('SIGTERM');
  await draining;
  // The component is draining now: the requests in flight send the rest of their bodies.
  await sleep(500);
  for (const request of inFlight) request.request.finish();
  const outcomes = await Promise.all(inFlight.map((request) => request.request.outcome));
  const exit = await target.exited;
  const exitedAt = Date.now();
  const summary = target.recent.map(drainSummary).find((s) => s !== undefined);
  await sleep(300);
  const restartedAt = Date.now();
  await target.start();
  const restartSeconds = (Date.now() - restartedAt) / 1000;
  // Calls made after the restart: every agent's must succeed.
  await sleep(1000);
  const recoveredFrom = Date.now();
  await sleep(2000);
  stop = true;
  await Promise.all([...callers, ...writers]);

  const accepted = inFlight.map((request, i) => request.accept(outcomes[i]!));
  const failedInFlight = inFlight.flatMap((request, i) =>
    accepted[i] ? [] : [`${request.what}: ${describe(outcomes[i]!)}`],
  );
  const before = new Tally();
  const during = new Tally();
  const after = new Tally();
  for (const call of background) {
    const tally = call.sentAt < signalledAt ? before : call.sentAt < recoveredFrom ? during : after;
    tally.add('calls', call.label);
  }
  const afterFailures = after.count('calls') - after.count('calls', 'ok');
  progress(
    `${component}: in flight ${accepted.filter(Boolean).length}/${inFlight.length} completed; ` +
      `drain ${summary ? `finished ${summary.finished}, cut ${summary.cut}` : 'summary missing'}; exit ${exit.code ?? exit.signal}; ` +
      `calls through the gateway before: ${before.describe('calls')}; while stopping and restarting: ${during.describe('calls')}; after: ${after.describe('calls')}`,
  );
  return {
    checks: [
      check(
        `${component}: requests in flight at SIGTERM complete`,
        failedInFlight.length === 0 && summary?.cut === 0 && (summary?.finished ?? 0) >= inFlight.length,
        `${accepted.filter(Boolean).length}/${inFlight.length} held requests answered as they should` +
          `${failedInFlight.length > 0 ? ` (${failedInFlight.join('; ')})` : ''}; drain summary: ` +
          `${summary ? `finished ${summary.finished}, cut ${summary.cut}` : 'none'}`,
      ),
      check(
        `${component}: exits 0 after the drain`,
        exit.code === 0,
        `exit ${exit.code ?? exit.signal} in ${((exitedAt - signalledAt) / 1000).toFixed(1)} s`,
      ),
      check(
        `${component}: calls succeed again after the restart`,
        afterFailures === 0 && after.count('calls', 'ok') > 0,
        `after: ${after.describe('calls')}`,
      ),
    ],
    numbers: [
      [
        `${component}: held in flight / drain finished, cut`,
        `${inFlight.length} / ${summary?.finished ?? '?'}, ${summary?.cut ?? '?'}`,
      ],
      [`${component}: calls through the gateway sent before SIGTERM`, before.describe('calls')],
      [
        `${component}: calls while it stopped and restarted (${restartSeconds.toFixed(1)} s to ready)`,
        during.describe('calls'),
      ],
    ] as Array<[string, string]>,
  };
}

function drainSummary(line: string): { finished: number; cut: number } | undefined {
  const match = /"message":"closed[^"]*"[^}]*"finished":(\d+),"cut":(\d+)/.exec(line);
  return match ? { finished: Number(match[1]), cut: Number(match[2]) } : undefined;
}

function describe(outcome: Outcome): string {
  return outcome.error
    ? `connection ${outcome.error.code}`
    : `HTTP ${outcome.answer.status} ${outcome.answer.body.slice(0, 120)}`;
}

const ORDER = JSON.stringify({ symbol: 'SAP', side: 'buy', quantity: 1 });

/** The requests that will be in flight at `component` when it gets SIGTERM. */
async function prepareInFlight(context: Context, component: ComponentName): Promise<InFlight[]> {
  const { stack, agents } = context;
  const toolCall = (i: number) => ({
    era: agents[i % agents.length]!.era,
    body: rpcBody(agents[i % agents.length]!.era, 'tools/call'),
  });
  const toolResult = (outcome: Outcome) => judgeValid(outcome, 'tools/call').ok;
  switch (component) {
    case 'gateway':
      return Array.from({ length: IN_FLIGHT }, (_, i) => {
        const agent = agents[i % agents.length]!;
        const call = toolCall(i);
        return {
          what: `tool call through the gateway (${call.era})`,
          request: slowRequest(stack.urls.mcpUrl, {
            headers: mcpHeaders(call.era, agent.token, { method: 'tools/call', tool: 'get_stock' }),
            body: call.body,
            localAddress: agent.address,
          }),
          accept: toolResult,
        };
      });
    case 'mcp-server': {
      const phantoms = await Promise.all(
        agents.slice(0, IN_FLIGHT).map((agent) => phantomJwt(stack, agent.token)),
      );
      return phantoms.map((phantom, i) => {
        const call = toolCall(i);
        return {
          what: `tool call at the MCP server (${call.era})`,
          request: slowRequest(`${stack.urls.mcpServerUrl}/mcp`, {
            headers: mcpHeaders(call.era, phantom, { method: 'tools/call', tool: 'get_stock' }),
            body: call.body,
            localAddress: '127.0.0.1',
          }),
          accept: toolResult,
        };
      });
    }
    case 'apis': {
      const tokens = await Promise.all(
        agents
          .slice(0, IN_FLIGHT)
          .map(async (agent) => stocksApiToken(stack, await phantomJwt(stack, agent.token))),
      );
      return tokens.map((token) => ({
        what: 'stock order at the APIs',
        request: slowRequest(`${stack.urls.apisUrl}/stocks/orders`, {
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: ORDER,
          localAddress: '127.0.0.1',
        }),
        accept: (outcome: Outcome) => outcome.answer?.status === 201,
      }));
    }
    case 'authorization-server':
      return [
        ...(await Promise.all([0, 1].map(() => heldRegistration(context)))),
        ...(await Promise.all([0, 1].map(() => heldTokenRequest(context)))),
        ...(await Promise.all([0, 1].map(() => heldConsent(context)))),
      ];
  }
}

function heldRegistration(context: Context): InFlight {
  return {
    what: 'registration',
    request: slowRequest(context.discovery.registrationEndpoint, {
      headers: { 'content-type': 'application/json' },
      body: registrationBody('held registration'),
      localAddress: context.machines.next(),
    }),
    accept(outcome) {
      if (outcome.answer?.status !== 201) return false;
      context.ledger.registrations.push(registrationOf(outcome.answer));
      return true;
    },
  };
}

/** A user who has signed in and consented; the code is redeemed by the held request. */
async function heldTokenRequest(context: Context): Promise<InFlight> {
  const { discovery } = context;
  const address = context.machines.next();
  const browser = new Browser(address);
  const registration = await register(discovery, browser.agent, 'held token request');
  const authorization = authorizationRequest(discovery, registration.clientId);
  const played = await playUser(
    discovery.issuer,
    browser,
    email(context, 'held'),
    browser.request(authorization.url),
  );
  if (!('callback' in played)) throw new Error('no callback');
  const code = codeOf(played.callback, authorization, discovery.issuer);
  return {
    what: 'token request',
    request: slowRequest(discovery.tokenEndpoint, {
      headers: FORM,
      body: tokenRequestBody(discovery, registration.clientId, code, authorization.verifier),
      localAddress: address,
    }),
    accept(outcome) {
      if (outcome.answer?.status !== 200) return false;
      context.ledger.tokens.push(accessTokenOf(outcome.answer));
      return true;
    },
  };
}

/** A user on the consent page; the held request is their answer to it. */
async function heldConsent(context: Context): Promise<InFlight> {
  const { discovery } = context;
  const address = context.machines.next();
  const browser = new Browser(address);
  const user = email(context, 'held');
  const registration = await register(discovery, browser.agent, 'held consent');
  const authorization = authorizationRequest(discovery, registration.clientId);
  const shown = await playUser(discovery.issuer, browser, user, browser.request(authorization.url), {
    stopAtConsent: true,
  });
  if (!('consent' in shown)) throw new Error('no consent page');
  return {
    what: 'consent',
    request: slowRequest(shown.consent.url, {
      headers: browser.headers({ ...FORM, origin: new URL(discovery.issuer).origin }),
      body: new URLSearchParams(shown.consent.form).toString(),
      localAddress: address,
    }),
    accept(outcome) {
      const location = outcome.answer?.headers.location;
      if (outcome.answer?.status !== 303 || !location) return false;
      browser.received(shown.consent.url, outcome.answer);
      // The resume that rotates the session is never followed: the browser's session cookie holds.
      context.ledger.consents.push({
        browser,
        clientId: registration.clientId,
        email: user,
        sessionAcked: true,
      });
      return !location.startsWith(REDIRECT_URI) || new URL(location).searchParams.has('code');
    },
  };
}
