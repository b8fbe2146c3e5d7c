import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addSamples, type CpuProfile, categoryOf, emptyBreakdown } from '../../bench/profile-summary.ts';

const frame = (functionName: string, url = '') => ({ functionName, url, lineNumber: 0 });

test('frames fall in their category, the specific before the general', () => {
  assert.equal(categoryOf(frame('(garbage collector)')), 'GC');
  assert.equal(
    categoryOf(frame('sign', 'file:///x/node_modules/jose/dist/webapi/jws/sign.js')),
    'crypto / JWT (jose, node:crypto)',
  );
  assert.equal(categoryOf(frame('emit', 'file:///x/src/shared/logging.ts')), 'logging');
  assert.equal(
    categoryOf(frame('upsert', 'file:///x/src/authorization-server/store/sqlite-store.ts')),
    'store: SQLite (node:sqlite, Gatehouse adapter)',
  );
  assert.equal(
    categoryOf(frame('upsert', 'file:///x/node_modules/oidc-provider/lib/adapters/memory_adapter.js')),
    'store: in-memory adapter',
  );
  assert.equal(
    categoryOf(frame('token', 'file:///x/node_modules/oidc-provider/lib/actions/token.js')),
    'oidc-provider, Koa',
  );
  assert.equal(
    categoryOf(frame('parserOnHeadersComplete', 'node:_http_common')),
    'HTTP (node:http, net, streams)',
  );
  assert.equal(categoryOf(frame('stringify')), 'JSON');
  assert.equal(categoryOf(frame('handle', 'file:///x/src/gateway/server.ts')), 'Gatehouse (other)');
  assert.equal(
    categoryOf(frame('(anonymous)', 'file:///x/node_modules/lru-cache/dist/index.js')),
    'other libraries',
  );
});

/**
 * (root) → handler (Gatehouse) → emit (logging) → stringify (JSON); and (idle). Samples at 10, 20,
 * 30, 40 µs after the start, each lasting until the next (the last until endTime, 50).
 */
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 5] },
    { id: 2, callFrame: frame('handle', 'file:///x/src/gateway/server.ts'), children: [3] },
    { id: 3, callFrame: frame('emit', 'file:///x/src/shared/logging.ts'), children: [4] },
    { id: 4, callFrame: frame('stringify') },
    { id: 5, callFrame: frame('(idle)') },
  ],
  startTime: 1000,
  endTime: 1050,
  samples: [4, 2, 5, 4],
  timeDeltas: [10, 10, 10, 10],
};

test('inclusive time counts every category on the stack, self time only the innermost; idle is not busy', () => {
  const breakdown = emptyBreakdown();
  addSamples(breakdown, profile, undefined);
  assert.equal(breakdown.sampledUs, 40);
  assert.equal(breakdown.busyUs, 30);
  assert.equal(breakdown.inclusiveUs.get('JSON'), 20);
  assert.equal(breakdown.inclusiveUs.get('logging'), 20);
  assert.equal(breakdown.inclusiveUs.get('Gatehouse (other)'), 30);
  assert.equal(breakdown.selfByCategoryUs.get('JSON'), 20);
  assert.equal(breakdown.selfByCategoryUs.get('Gatehouse (other)'), 10);
  assert.equal(breakdown.selfByCategoryUs.get('logging'), undefined);
});

test('only the samples inside the measured windows count', () => {
  const breakdown = emptyBreakdown();
  // The samples at 1020 and 1030 (handle, idle).
  addSamples(breakdown, profile, [{ startUs: 1015, endUs: 1035 }]);
  assert.equal(breakdown.sampledUs, 20);
  assert.equal(breakdown.busyUs, 10);
  assert.deepEqual([...breakdown.selfUs.keys()], ['handle  src/gateway/server.ts:1']);
});

test('a dispatcher does not get the time of the handlers it calls: inclusive stops at the innermost application frame', () => {
  const dispatched: CpuProfile = {
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2] },
      { id: 2, callFrame: frame('parserOnIncoming', 'node:_http_server'), children: [3] },
      { id: 3, callFrame: frame('handle', 'file:///x/src/gateway/server.ts'), children: [4] },
      { id: 4, callFrame: frame('writev') },
    ],
    startTime: 0,
    endTime: 20,
    samples: [4, 2],
    timeDeltas: [0, 10],
  };
  const breakdown = emptyBreakdown();
  addSamples(breakdown, dispatched, undefined);
  // writev under the handler: the handler's; parserOnIncoming itself: HTTP's.
  assert.equal(breakdown.inclusiveUs.get('Gatehouse (other)'), 10);
  assert.equal(breakdown.inclusiveUs.get('HTTP (node:http, net, streams)'), 10);
  assert.equal(breakdown.selfByCategoryUs.get('Gatehouse (other)'), 10);
});
