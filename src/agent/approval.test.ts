import assert from 'node:assert/strict';
import { test } from 'node:test';
import { answerElicitation } from './approval.ts';

const ISSUER = 'https://auth.example.com';

function how(decision?: boolean) {
  const opened: string[] = [];
  const told: string[] = [];
  return {
    opened,
    told,
    options: {
      issuer: ISSUER,
      open: (url: string) => {
        opened.push(url);
      },
      decide: decision === undefined ? undefined : async () => decision,
      tell: (message: string) => told.push(message),
    },
  };
}

test("an approval page of the authorization server is shown, and the answer is the person's", async () => {
  const yes = how(true);
  const url = `${ISSUER}/account/approvals/ap_${'x'.repeat(24)}`;
  assert.deepEqual(await answerElicitation({ mode: 'url', url, message: 'Approve it' }, yes.options), {
    action: 'accept',
  });
  assert.deepEqual(yes.opened, [url]);
  assert.match(yes.told[0]!, /^Approval needed: Approve it/);
  const no = how(false);
  assert.equal((await answerElicitation({ mode: 'url', url }, no.options)).action, 'decline');
  const nobody = how();
  assert.equal(
    (await answerElicitation({ mode: 'url', url }, nobody.options)).action,
    'decline',
    'no one to ask',
  );
  assert.deepEqual(nobody.opened, [url], 'the link is still shown');
});

test('a page anywhere else is never opened, and form-mode questions are declined', async () => {
  for (const url of [
    'https://evil.example/approve',
    'http://auth.example.com/account',
    'not a url',
    `${ISSUER}/authorize?client_id=attacker&response_type=code`,
    `${ISSUER}/account/approvals/ap_${'x'.repeat(24)}?next=https://evil.example`,
    `${ISSUER}/account`,
  ]) {
    const h = how(true);
    assert.equal((await answerElicitation({ mode: 'url', url }, h.options)).action, 'decline', url);
    assert.deepEqual(h.opened, [], url);
  }
  const noisy = how(true);
  await answerElicitation(
    { mode: 'url', url: `${ISSUER}/account/approvals/ap_${'y'.repeat(24)}`, message: 'ok\u001b[2Jcleared' },
    noisy.options,
  );
  assert.ok(!noisy.told[0]!.includes('\u001b'), 'no terminal escapes from the server');
  const form = how(true);
  assert.equal(
    (await answerElicitation({ mode: 'form', message: 'your password?' }, form.options)).action,
    'decline',
  );
  const unknownIssuer = how(true);
  assert.equal(
    (
      await answerElicitation(
        { mode: 'url', url: `${ISSUER}/x` },
        { ...unknownIssuer.options, issuer: undefined },
      )
    ).action,
    'decline',
  );
});
