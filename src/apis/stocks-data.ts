/** Seed data of the stocks API: a few listed companies per region, with fixed prices. */

export interface Stock {
  symbol: string;
  name: string;
  /** Who may see the stock: callers whose `region` claim names this region. */
  region: string;
  exchange: string;
  currency: string;
  price: number;
}

export const STOCKS: readonly Stock[] = [
  {
    symbol: 'ASML',
    name: 'ASML Holding',
    region: 'eu',
    exchange: 'Euronext Amsterdam',
    currency: 'EUR',
    price: 684.2,
  },
  { symbol: 'SAP', name: 'SAP SE', region: 'eu', exchange: 'Xetra', currency: 'EUR', price: 231.55 },
  {
    symbol: 'NESN',
    name: 'Nestlé',
    region: 'eu',
    exchange: 'SIX Swiss Exchange',
    currency: 'CHF',
    price: 78.9,
  },
  {
    symbol: 'ACME',
    name: 'Acme Corporation',
    region: 'us',
    exchange: 'NYSE',
    currency: 'USD',
    price: 123.45,
  },
  {
    symbol: 'GLOBEX',
    name: 'Globex Corporation',
    region: 'us',
    exchange: 'NASDAQ',
    currency: 'USD',
    price: 57.1,
  },
  { symbol: 'INITECH', name: 'Initech', region: 'us', exchange: 'NYSE', currency: 'USD', price: 18.75 },
];
