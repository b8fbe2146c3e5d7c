/**
 * Stock orders: validation of an order request and the in-memory order book.
 *
 * The book is process memory only (an example API) and bounded, so a busy caller cannot grow it
 * without limit: past `maxOrders` the oldest orders are forgotten.
 */
import { randomUUID } from 'node:crypto';
import type { AccessTokenPayload } from '../shared/jwt.ts';
import { invalidRequest } from './api-error.ts';

export const MAX_QUANTITY = 10_000;
const SIDES = new Set(['buy', 'sell']);
const FIELDS = new Set(['symbol', 'side', 'quantity']);

export interface OrderRequest {
  /** Upper case. */
  symbol: string;
  side: 'buy' | 'sell';
  quantity: number;
}

export interface Order extends OrderRequest {
  id: string;
  status: 'accepted';
  /** The user (or workload) the order is for: the token's `sub`. */
  placedBy: string;
  /** The agent that asked: the token's `client_id`. */
  client: string;
  /** Who called the API on the client's behalf (RFC 8693 `act.sub`: the MCP server), or null. */
  actor: string | null;
  placedAt: string;
}

/** Checks an order request body; a 400 names the first field that is wrong. */
export function parseOrderRequest(body: unknown): OrderRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalidRequest('the body must be a JSON object {symbol, side, quantity}');
  }
  const unknown = Object.keys(body).filter((key) => !FIELDS.has(key));
  if (unknown.length > 0) throw invalidRequest(`unknown field ${JSON.stringify(unknown[0])}`);
  const { symbol, side, quantity } = body as Record<string, unknown>;
  if (typeof symbol !== 'string' || !/^[A-Za-z]{1,8}$/.test(symbol)) {
    throw invalidRequest('symbol must be a ticker symbol of 1 to 8 letters, e.g. "ACME"');
  }
  if (typeof side !== 'string' || !SIDES.has(side)) throw invalidRequest('side must be "buy" or "sell"');
  if (
    typeof quantity !== 'number' ||
    !Number.isInteger(quantity) ||
    quantity < 1 ||
    quantity > MAX_QUANTITY
  ) {
    throw invalidRequest(`quantity must be a whole number from 1 to ${MAX_QUANTITY}`);
  }
  return { symbol: symbol.toUpperCase(), side: side as OrderRequest['side'], quantity };
}

/** `act.sub` of a token (RFC 8693 §4.1), when there is one. */
export function actorOf(claims: AccessTokenPayload): string | null {
  const act = claims.act;
  if (typeof act !== 'object' || act === null) return null;
  const sub = (act as { sub?: unknown }).sub;
  return typeof sub === 'string' ? sub : null;
}

export interface OrderBook {
  place(request: OrderRequest, claims: AccessTokenPayload): Order;
  get size(): number;
}

export function createOrderBook(maxOrders = 10_000): OrderBook {
  const orders = new Map<string, Order>();
  return {
    place(request, claims) {
      const order: Order = {
        id: randomUUID(),
        ...request,
        status: 'accepted',
        placedBy: claims.sub,
        client: claims.client_id,
        actor: actorOf(claims),
        placedAt: new Date().toISOString(),
      };
      orders.set(order.id, order);
      if (orders.size > maxOrders) orders.delete(orders.keys().next().value!);
      return order;
    },
    get size() {
      return orders.size;
    },
  };
}
