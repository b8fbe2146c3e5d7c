/**
 * kill -9 during registrations and consents: nothing acknowledged is lost.
 *
 * Eight writers, each a new machine and user every time, run the whole story again and again
 * against the authorization server: registration (DCR), sign-in, consent, token. At a random moment
 * the authorization server gets SIGKILL (no drain, no close of the database); it is started again
 * on the same data directory. Three rounds. Afterwards every write it had acknowledged (a 201
 * registration, a consent answered with its redirect, a 200 token) is checked through the API
 * (support/writes.ts), and a new writer must get all the way to a token (the server recovered).
 */
import { discover } from '../support/agent.ts';
import { keepAliveAgent } from '../support/http.ts';
import { Addresses } from '../support/outcomes.ts';
import {
  check,
  type Scenario,
  type ScenarioContext,
  type ScenarioReport,
  sleep,
} from '../support/scenario.ts';
import { APPROVED_DOMAIN, LOAD_TEST_DOMAIN, Stack } from '../support/stack.ts';
import { controlLedger, describeVerification, Ledger, verifyLedger, writeFlow } from '../support/writes.ts';

const ROUNDS = 3;
const WRITERS = 8;

export const scenario: Scenario = {
  name: 'kill9',
  title: 'kill -9 of the authorization server during registrations and consents',
  budgetSeconds: 90,
  run,
};

async function run({ dir, progress }: ScenarioContext): Promise<ScenarioReport> {
  const stack = new Stack(dir, [APPROVED_DOMAIN]);
  try {
    progress('starting the stack');
    await stack.start();
    const as = stack.components['authorization-server'];
    const discovery = await discover(stack.urls.mcpUrl, keepAliveAgent('127.3.0.1'));
    const machines = new Addresses(4);
    let users = 0;
    const ledger = new Ledger();
    const kills: number[] = [];
    const restartMs: number[] = [];

    for (let round = 1; round <= ROUNDS; round += 1) {
      let stop = false;
      const writers = Array.from({ length: WRITERS }, async () => {
        while (!stop)
          await writeFlow(discovery, machines.next(), `writer-${users++}@${LOAD_TEST_DOMAIN}`, ledger);
      });
      const before = ledger.describe();
      await sleep(2000 + Math.random() * 2000);
      const exit = await as.stop('SIGKILL');
      kills.push(Date.now());
      stop = true;
      await Promise.all(writers);
      progress(
        `round ${round}: SIGKILL (${exit.signal}); acknowledged so far: ${ledger.describe()} (before: ${before})`,
      );
      const started = Date.now();
      await as.start();
      restartMs.push(Date.now() - started);
    }

    progress(`checking ${ledger.describe()} through the API`);
    const verification = await verifyLedger(stack, discovery, ledger);
    const control = await verifyLedger(
      stack,
      discovery,
      await controlLedger(discovery, machines.next(), ledger),
    );
    const after = new Ledger();
    await writeFlow(discovery, machines.next(), `writer-${users++}@${LOAD_TEST_DOMAIN}`, after);
    return {
      checks: [
        check(
          'nothing acknowledged is lost (kill -9 during registrations and consents)',
          verification.lost === 0 && ledger.consents.length > 0 && ledger.registrations.length > 0,
          describeVerification(verification),
        ),
        check(
          'the check finds writes that are not there (control: a deleted client, a consent never given, a token never issued)',
          control.lost === 3,
          `${control.lost} of 3 reported missing`,
        ),
        check(
          'the authorization server works again after the restart',
          after.tokens.length === 1,
          `a new client after the last restart: ${after.flows.describe('flows')}`,
        ),
      ],
      numbers: [
        ['rounds (SIGKILL, restart on the same data directory)', ROUNDS],
        ['writers (each flow a new machine and user)', WRITERS],
        [
          'acknowledged registrations / consents / tokens',
          `${ledger.registrations.length} / ${ledger.consents.length} / ${ledger.tokens.length}`,
        ],
        [
          'still there after the restarts',
          `${verification.registrations.present} / ${verification.consents.present} / ${verification.tokens.present}`,
        ],
        ['how the writer flows ended', ledger.flows.describe('flows')],
        ['restart until ready', restartMs.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(', ')],
      ],
      deviations: stack.deviations,
    };
  } finally {
    await stack.close();
  }
}
