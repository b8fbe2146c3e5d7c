/**
 * The stocks API: list and read the stocks of the caller's region (read scope), place orders
 * (trade scope, and a minimum client assurance level).
 *
 *   GET  /stocks           → 200 {stocks: Stock[]}    the caller's region(s) only
 *   GET  /stocks/{symbol}  → 200 Stock | 404          404 too for a stock of another region
 *   POST /stocks/orders    → 201 Order | 400 | 403 insufficient_client_assurance | 404
 */

import type { ApisConfig } from '../shared/config/schema.ts';
import type { AccessTokenPayload, AccessTokenVerifier } from '../shared/jwt.ts';
import type { Logger } from '../shared/logging.ts';
import { argumentsDigest, toolCallDetailsOf } from '../shared/operation-approval.ts';
import { ApiError, notFound } from './api-error.ts';
import { createOrderBook, type OrderBook, parseOrderRequest } from './orders.ts';
import { findVisibleStock, regionsOf, visibleStocks } from './regions.ts';
import type { Api } from './router.ts';
import { STOCKS, type Stock } from './stocks-data.ts';

export const STOCKS_API_NAME = 'Stocks API';

export interface StocksApiOptions {
  config: ApisConfig['stocks'];
  verifier: AccessTokenVerifier;
  logger: Logger;
  stocks?: readonly Stock[];
  orders?: OrderBook;
}

const unknownStock = (symbol: string) =>
  notFound(`no stock ${JSON.stringify(symbol.toUpperCase())} is available in your region`);

/** `client_assurance_level` as the authorization server sets it (4 pre-registered … 1 DCR); absent is 0. */
export function assuranceLevelOf(claims: AccessTokenPayload): number {
  const level = claims.client_assurance_level;
  return typeof level === 'number' && Number.isFinite(level) ? level : 0;
}

/**
 * The approvals orders were placed against, until their tokens expire: an approval-bound token is
 * good for one order. Per process (one API instance; several would share this in a store), and
 * bounded: when full, the entries whose tokens expired go first, and a new one is refused rather
 * than an old one forgotten.
 */
export function createUsedApprovals(maxEntries = 100_000) {
  const spentUntil = new Map<string, number>();
  return {
    /** True the first time an approval is spent; false when it was, or when nothing can be kept. */
    spend(approvalId: string, expiresAt: number): boolean {
      if (!approvalId) return false;
      const now = Date.now() / 1000;
      if ((spentUntil.get(approvalId) ?? 0) > now) return false;
      if (spentUntil.size >= maxEntries)
        for (const [id, until] of spentUntil) if (until <= now) spentUntil.delete(id);
      if (spentUntil.size >= maxEntries) return false;
      spentUntil.set(approvalId, Number.isFinite(expiresAt) ? expiresAt : now + 3600);
      return true;
    },
  };
}

export function createStocksApi(options: StocksApiOptions): Api {
  const usedApprovals = createUsedApprovals();
  const { config, logger } = options;
  const stocks = options.stocks ?? STOCKS;
  const orders = options.orders ?? createOrderBook();

  return {
    name: STOCKS_API_NAME,
    basePath: 'stocks',
    verifier: options.verifier,
    routes: [
      {
        method: 'GET',
        path: '/',
        scope: config.readScope,
        handle: ({ claims }) => ({ status: 200, body: { stocks: visibleStocks(stocks, regionsOf(claims)) } }),
      },
      {
        method: 'POST',
        path: '/orders',
        scope: config.tradeScope,
        async handle({ claims, body }) {
          const audit = { sub: claims.sub, client_id: claims.client_id };
          // Who the client is matters for orders, whatever the user consented to: a dynamically
          // registered agent proves nothing about itself. More scope would not help, so no challenge.
          const level = assuranceLevelOf(claims);
          if (level < config.minAssuranceLevelForOrders) {
            logger.audit('stocks.order', {
              outcome: 'denied',
              ...audit,
              reason: 'client assurance too low',
              level,
            });
            throw new ApiError(
              403,
              'insufficient_client_assurance',
              `placing orders needs a client assurance level of at least ${config.minAssuranceLevelForOrders}; ` +
                `this client has ${level}. Use a pre-registered client or one from a trusted domain`,
            );
          }
          const received = await body();
          // An order made against the user's approval of it (RFC 9396 authorization_details in the
          // token): it must be the very operation approved, or it is refused.
          const approved =
            claims.authorization_details === undefined
              ? undefined
              : toolCallDetailsOf(claims.authorization_details);
          if (
            claims.authorization_details !== undefined &&
            (!approved || approved.arguments_digest !== argumentsDigest(received))
          ) {
            logger.audit('stocks.order', {
              outcome: 'denied',
              ...audit,
              reason: 'not the approved operation',
            });
            throw new ApiError(
              403,
              'insufficient_authorization_details',
              'this order is not the one the user approved',
            );
          }
          const request = parseOrderRequest(received);
          if (!findVisibleStock(stocks, regionsOf(claims), request.symbol))
            throw unknownStock(request.symbol);
          // One approval, one order: the token may be presented again while it lives, the approval
          // is spent by the first order it placed (remembered until the token has expired).
          if (approved && !usedApprovals.spend(approved.approval_id ?? '', Number(claims.exp))) {
            logger.audit('stocks.order', {
              outcome: 'denied',
              ...audit,
              reason: 'approval already used',
              approval_id: approved.approval_id,
            });
            throw new ApiError(
              403,
              'insufficient_authorization_details',
              'the approval of this order was used already',
            );
          }
          const order = orders.place(request, claims);
          logger.audit('stocks.order', {
            outcome: 'success',
            ...audit,
            actor: order.actor,
            order_id: order.id,
            ...(approved?.approval_id ? { approval_id: approved.approval_id } : {}),
            ...(approved?.amount ? { approved_amount: approved.amount.value } : {}),
            symbol: order.symbol,
            side: order.side,
            quantity: order.quantity,
          });
          return { status: 201, body: order };
        },
      },
      {
        method: 'GET',
        path: '/{symbol}',
        scope: config.readScope,
        handle({ claims, params }) {
          const symbol = params.symbol ?? '';
          const stock = findVisibleStock(stocks, regionsOf(claims), symbol);
          if (!stock) throw unknownStock(symbol);
          return { status: 200, body: stock };
        },
      },
    ],
  };
}
