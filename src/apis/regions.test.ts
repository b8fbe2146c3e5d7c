import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { findVisibleStock, regionsOf, visibleStocks } from './regions.ts';
import { STOCKS } from './stocks-data.ts';

const symbols = (list: { symbol: string }[]) => list.map((stock) => stock.symbol);

describe('region filtering', () => {
  test('the region claim names the regions a caller sees', () => {
    assert.deepEqual([...regionsOf({ region: 'eu' })], ['eu']);
    assert.deepEqual([...regionsOf({ region: 'US' })], ['us']);
    assert.deepEqual([...regionsOf({ region: ['eu', 'us'] })], ['eu', 'us']);
  });

  test('no region, or a region claim of another type, names none', () => {
    for (const region of [undefined, null, '', 1, true, {}, [1, 2]]) {
      assert.equal(regionsOf({ region }).size, 0, JSON.stringify(region));
    }
  });

  test('eu callers see eu stocks, us callers us stocks, both see both', () => {
    assert.deepEqual(symbols(visibleStocks(STOCKS, regionsOf({ region: 'eu' }))), ['ASML', 'SAP', 'NESN']);
    assert.deepEqual(symbols(visibleStocks(STOCKS, regionsOf({ region: 'us' }))), [
      'ACME',
      'GLOBEX',
      'INITECH',
    ]);
    assert.equal(visibleStocks(STOCKS, regionsOf({ region: ['eu', 'us'] })).length, 6);
  });

  test('a caller without a region sees no stocks (deny by default)', () => {
    assert.deepEqual(visibleStocks(STOCKS, regionsOf({})), []);
    assert.equal(findVisibleStock(STOCKS, regionsOf({}), 'ACME'), undefined);
  });

  test('one stock: by symbol in any case, and only in the caller’s region', () => {
    assert.equal(findVisibleStock(STOCKS, regionsOf({ region: 'us' }), 'acme')?.name, 'Acme Corporation');
    assert.equal(findVisibleStock(STOCKS, regionsOf({ region: 'eu' }), 'ACME'), undefined);
    assert.equal(findVisibleStock(STOCKS, regionsOf({ region: 'eu' }), 'NOPE'), undefined);
  });
});
