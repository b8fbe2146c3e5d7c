/**
 * The regions a caller may see, from the token's `region` claim (set per user by the authorization
 * server's `users` configuration). A string names one region, an array several; anything else, or
 * no claim at all, names none: a caller without a region sees no stocks (deny by default).
 */
import type { Stock } from './stocks-data.ts';

export function regionsOf(claims: Record<string, unknown>): Set<string> {
  const value = claims.region;
  const list = typeof value === 'string' ? [value] : Array.isArray(value) ? value : [];
  return new Set(
    list
      .filter((item): item is string => typeof item === 'string' && item !== '')
      .map((r) => r.toLowerCase()),
  );
}

/** The stocks visible in `regions`, in catalogue order. */
export function visibleStocks(stocks: readonly Stock[], regions: Set<string>): Stock[] {
  return stocks.filter((stock) => regions.has(stock.region));
}

/**
 * One stock by symbol (case-insensitive), only if visible in `regions`: a stock of another region is
 * as unknown as one that does not exist, so its existence does not leak.
 */
export function findVisibleStock(
  stocks: readonly Stock[],
  regions: Set<string>,
  symbol: string,
): Stock | undefined {
  const wanted = symbol.toUpperCase();
  return visibleStocks(stocks, regions).find((stock) => stock.symbol === wanted);
}
