import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, parseConfig } from '../../shared/config/load.ts';
import { type ResolvedToolConfig, resolveApiScopes, type UpstreamApi } from '../settings.ts';
import { buildCatalogue, type ToolDefinition, validateArguments } from './catalogue.ts';

const apis = new Map<string, UpstreamApi>([
  ['stocks', { name: 'stocks', baseUrl: 'http://127.0.0.1:8002/stocks', audience: 'http://a/stocks' }],
]);

const defaults = resolveApiScopes(parseConfig({}));
const catalogue = buildCatalogue(
  defaults,
  new Map([...apis, ['customers', { ...apis.get('stocks')!, name: 'customers' }]]),
);
const tool = (name: string) => catalogue.find((entry) => entry.name === name) as ToolDefinition;

function toolConfig(overrides: Partial<ResolvedToolConfig>): ResolvedToolConfig {
  return {
    name: 't',
    description: 'a tool',
    inputSchema: { type: 'object', properties: {} },
    api: 'stocks',
    method: 'GET',
    path: '/',
    scopes: ['stocks:read'],
    apiScopes: ['stocks.read'],
    approval: 'none',
    annotations: {},
    ...overrides,
  };
}

describe('the tool catalogue', () => {
  test('compiles the default tools with their API, scopes, title and annotations', () => {
    assert.deepEqual(
      catalogue.map((entry) => [entry.name, entry.api.name, entry.scopes]),
      [
        ['list_stocks', 'stocks', ['stocks:read']],
        ['get_stock', 'stocks', ['stocks:read']],
        ['place_order', 'stocks', ['stocks:trade']],
        ['get_my_customer_record', 'customers', ['customers:read']],
      ],
    );
    assert.deepEqual(tool('place_order').annotations, {
      title: 'Place a stock order',
      readOnlyHint: false,
      destructiveHint: true,
    });
    assert.deepEqual(
      tool('get_stock').inputSchema['~standard'].jsonSchema.input({ target: 'draft-2020-12' }),
      {
        ...defaults[1]!.inputSchema,
      },
    );
  });

  test('accepts arguments that fit the schema', async () => {
    assert.deepEqual(await validateArguments(tool('get_stock'), { symbol: 'ACME' }), {
      ok: true,
      value: { symbol: 'ACME' },
    });
    const order = await validateArguments(tool('place_order'), {
      symbol: 'ACME',
      side: 'sell',
      quantity: 10,
    });
    assert.equal(order.ok, true);
    assert.equal((await validateArguments(tool('list_stocks'), undefined)).ok, true, 'no arguments at all');
  });

  test('refuses arguments that do not fit, saying why', async () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['get_stock', {}, /symbol/],
      ['get_stock', { symbol: '../admin' }, /pattern/],
      ['get_stock', { symbol: 'ACME', extra: 1 }, /additional/],
      ['place_order', { symbol: 'ACME', side: 'steal', quantity: 1 }, /allowed values|enum/],
      ['place_order', { symbol: 'ACME', side: 'buy', quantity: 0 }, />= 1|minimum/],
      ['place_order', { symbol: 'ACME', side: 'buy', quantity: 1.5 }, /integer/],
    ];
    for (const [name, args, reason] of cases) {
      const result = await validateArguments(tool(name), args);
      assert.equal(result.ok, false, JSON.stringify(args));
      if (!result.ok) assert.match(result.issues.join(' '), reason);
    }
  });

  test('a path argument must be a required property of the schema', () => {
    assert.throws(
      () =>
        buildCatalogue(
          [
            toolConfig({
              path: '/{symbol}',
              inputSchema: { type: 'object', properties: { symbol: { type: 'string' } } },
            }),
          ],
          apis,
        ),
      (error: unknown) =>
        error instanceof ConfigError && /mcpServer\.tools\.0\.path: "\{symbol\}"/.test(error.message),
    );
  });

  test('the input schema must be an object schema that compiles', () => {
    assert.throws(
      () => buildCatalogue([toolConfig({ inputSchema: { type: 'string' } })], apis),
      /mcpServer\.tools\.0\.inputSchema: must be a JSON Schema with "type": "object"/,
    );
    assert.throws(
      () =>
        buildCatalogue(
          [toolConfig({ inputSchema: { type: 'object', properties: { a: { type: 'nonsense' } } } })],
          apis,
        ),
      /mcpServer\.tools\.0\.inputSchema: not a valid JSON Schema/,
    );
  });

  test('the API must be configured', () => {
    assert.throws(
      () => buildCatalogue([toolConfig({ api: 'billing' })], apis),
      /"billing" is not a key of mcpServer\.apis/,
    );
  });
});
