import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ToolRule } from '../../shared/config/schema.ts';
import type { ToolRuleOverride } from '../admin/directory.ts';
import { admits, createToolPolicy, scopesClosedTo } from './tool-policy.ts';

const catalogue: Array<{ name: string; scopes: string[]; allow?: ToolRule }> = [
  { name: 'list_stocks', scopes: ['stocks:read'] },
  { name: 'place_order', scopes: ['stocks:trade'], allow: { role: ['trader'] } },
  { name: 'vip_report', scopes: ['stocks:read'], allow: { tier: ['gold'], region: ['eu'] } },
];
const store = (overrides: ToolRuleOverride[] = []) => ({ list: async () => overrides });

describe('a tool rule', () => {
  test('admits when every claim it names has one of its values', () => {
    assert.equal(admits(undefined, {}), true, 'no rule: everyone');
    assert.equal(admits({ role: ['trader'] }, { role: 'trader' }), true);
    assert.equal(admits({ role: ['trader'] }, { role: 'viewer' }), false);
    assert.equal(admits({ role: ['trader'] }, {}), false, 'a missing claim does not admit');
    assert.equal(admits({ groups: ['ops'] }, { groups: ['dev', 'ops'] }), true, 'a list claim: any element');
    assert.equal(
      admits({ tier: ['gold'], region: ['eu'] }, { tier: 'gold', region: 'us' }),
      false,
      'all claims',
    );
    assert.equal(admits({ level: [3] }, { level: '3' }), false, 'values compare exactly, no coercion');
  });
  test('a scope is closed when every tool needing it is closed; a scope no tool needs is not', () => {
    const tools = [
      { scopes: ['a'], admitted: false },
      { scopes: ['a', 'b'], admitted: true },
      { scopes: ['c'], admitted: false },
    ];
    assert.deepEqual(scopesClosedTo(tools, ['a', 'b', 'c', 'd']), ['c']);
  });
});

describe('the tool policy', () => {
  test('permits tools and forbids scopes by the configured rules', async () => {
    const policy = createToolPolicy(catalogue, store());
    assert.deepEqual(await policy.permittedTools({ role: 'trader' }), ['list_stocks', 'place_order']);
    assert.deepEqual(await policy.permittedTools({ tier: 'gold', region: 'eu' }), [
      'list_stocks',
      'vip_report',
    ]);
    assert.deepEqual(await policy.forbiddenScopes({}, ['stocks:read', 'stocks:trade', 'openid']), [
      'stocks:trade',
    ]);
    assert.deepEqual(await policy.forbiddenScopes({ role: 'trader' }, ['stocks:trade']), []);
  });
  test("an administrator's rule wins over the configuration's, null meaning everyone", async () => {
    const policy = createToolPolicy(
      catalogue,
      store([
        { tool: 'place_order', rule: null, updatedBy: 'admin@example.com', updatedAt: 1 },
        { tool: 'list_stocks', rule: { role: ['staff'] }, updatedBy: 'admin@example.com', updatedAt: 2 },
      ]),
    );
    assert.deepEqual(await policy.permittedTools({}), ['place_order']);
    const entries = await policy.entries();
    const placeOrder = entries.find((entry) => entry.name === 'place_order')!;
    assert.equal(placeOrder.source, 'administrator');
    assert.equal(placeOrder.rule, undefined);
    assert.deepEqual(placeOrder.configuredRule, { role: ['trader'] });
    assert.equal(entries.find((entry) => entry.name === 'vip_report')!.source, 'configuration');
  });
  test('an override for a tool the catalogue does not have changes nothing', async () => {
    const policy = createToolPolicy(
      catalogue,
      store([{ tool: 'gone', rule: null, updatedBy: 'a', updatedAt: 1 }]),
    );
    assert.deepEqual(await policy.permittedTools({}), ['list_stocks']);
    assert.equal(policy.has('gone'), false);
  });
});
