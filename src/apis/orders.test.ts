import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AccessTokenPayload } from '../shared/jwt.ts';
import { ApiError } from './api-error.ts';
import { actorOf, createOrderBook, parseOrderRequest } from './orders.ts';

const claims: AccessTokenPayload = {
  sub: 'user-1',
  client_id: 'agent-1',
  exp: 2_000_000_000,
  act: { sub: 'gatehouse-mcp-server' },
};

function refused(body: unknown, mentions: RegExp): void {
  assert.throws(
    () => parseOrderRequest(body),
    (error: unknown) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.status, 400);
      assert.equal(error.code, 'invalid_request');
      assert.match(error.message, mentions);
      return true;
    },
  );
}

describe('parseOrderRequest', () => {
  test('accepts a well-formed order and upper-cases the symbol', () => {
    assert.deepEqual(parseOrderRequest({ symbol: 'acme', side: 'buy', quantity: 10 }), {
      symbol: 'ACME',
      side: 'buy',
      quantity: 10,
    });
    assert.equal(parseOrderRequest({ symbol: 'SAP', side: 'sell', quantity: 1 }).quantity, 1);
    assert.equal(parseOrderRequest({ symbol: 'SAP', side: 'sell', quantity: 10_000 }).quantity, 10_000);
  });

  test('refuses what is not an object', () => {
    for (const body of [null, 'ACME', 42, [], true]) refused(body, /JSON object/);
  });

  test('refuses a missing or malformed symbol', () => {
    refused({ side: 'buy', quantity: 1 }, /symbol/);
    refused({ symbol: '', side: 'buy', quantity: 1 }, /symbol/);
    refused({ symbol: 'TOOLONGSYM', side: 'buy', quantity: 1 }, /symbol/);
    refused({ symbol: 'AC ME', side: 'buy', quantity: 1 }, /symbol/);
    refused({ symbol: '../x', side: 'buy', quantity: 1 }, /symbol/);
    refused({ symbol: 7, side: 'buy', quantity: 1 }, /symbol/);
  });

  test('refuses a side other than buy or sell', () => {
    refused({ symbol: 'ACME', quantity: 1 }, /side/);
    refused({ symbol: 'ACME', side: 'BUY', quantity: 1 }, /side/);
    refused({ symbol: 'ACME', side: 'short', quantity: 1 }, /side/);
  });

  test('refuses a quantity that is not a whole number from 1 to 10000', () => {
    for (const quantity of [0, -1, 10_001, 1.5, '5', Number.NaN, Number.POSITIVE_INFINITY, null, undefined]) {
      refused({ symbol: 'ACME', side: 'buy', quantity }, /quantity/);
    }
  });

  test('refuses unknown fields', () => {
    refused({ symbol: 'ACME', side: 'buy', quantity: 1, price: 1 }, /unknown field "price"/);
    refused({ symbol: 'ACME', side: 'buy', quantity: 1, placedBy: 'someone-else' }, /placedBy/);
  });
});

describe('order book', () => {
  test('an order records who placed it, through which client and actor', () => {
    const book = createOrderBook();
    const order = book.place({ symbol: 'ACME', side: 'buy', quantity: 3 }, claims);
    assert.equal(order.status, 'accepted');
    assert.equal(order.placedBy, 'user-1');
    assert.equal(order.client, 'agent-1');
    assert.equal(order.actor, 'gatehouse-mcp-server');
    assert.match(order.id, /^[0-9a-f-]{36}$/);
    assert.equal(book.size, 1);
  });

  test('is bounded: the oldest orders are forgotten', () => {
    const book = createOrderBook(2);
    for (let i = 0; i < 5; i += 1) book.place({ symbol: 'ACME', side: 'buy', quantity: 1 }, claims);
    assert.equal(book.size, 2);
  });

  test('actorOf reads act.sub and nothing else', () => {
    assert.equal(actorOf(claims), 'gatehouse-mcp-server');
    assert.equal(actorOf({ ...claims, act: undefined }), null);
    assert.equal(actorOf({ ...claims, act: 'x' }), null);
    assert.equal(actorOf({ ...claims, act: { sub: 1 } }), null);
  });
});
