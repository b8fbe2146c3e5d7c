/**
 * The revocation log's contract (event-log.ts), one suite run against each store: SQLite and
 * PostgreSQL must number, replay, find and prune the same way. PostgreSQL runs where a server is
 * reachable (test/helpers/postgres.ts); in CI it must be.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  createTestDatabase,
  skipWithoutPostgres,
  type TestDatabase,
} from '../../../test/helpers/postgres.ts';
import { connectPostgres, type Postgres } from '../store/postgres/connection.ts';
import { migrate } from '../store/postgres/migrations.ts';
import { POSTGRES_MIGRATIONS } from '../store/postgres/schema.ts';
import { closeDatabase, openDatabase } from '../store/sqlite-store.ts';
import { createSqliteRevocationEventLog, type RevocationEventLog } from './event-log.ts';
import { postgresRevocationEventLog } from './postgres-event-log.ts';

// Before any test is declared: the runner starts the file's tests once its first ones are in.
const skipPostgres = await skipWithoutPostgres();
const POOL = { max: 4, acquireTimeoutMs: 2000, statementTimeoutMs: 5000 };

/** Each call opens the same log again (a second instance on the same database). */
type LogFactory = () => Promise<RevocationEventLog>;

function contract(
  name: string,
  setup: () => Promise<{ open: LogFactory; close: () => Promise<void> }>,
  skip: false | string,
) {
  describe(`revocation log: ${name}`, { skip }, () => {
    let open: LogFactory;
    let close: () => Promise<void>;
    before(async () => {
      ({ open, close } = await setup());
    });
    after(() => close?.());

    test('events get increasing ids; a listener hears each; since() replays what came after an id', async () => {
      const log = await open();
      const heard: number[] = [];
      const unsubscribe = log.subscribe((stored) => heard.push(stored.id));
      const now = Math.floor(Date.now() / 1000);
      const a = await log.append({ type: 'grant', grant_id: 'a', at: now });
      const b = await log.append({ type: 'subject', sub: 'b', at: now });
      unsubscribe();
      await log.append({ type: 'client', client_id: 'c', at: now });
      assert.deepEqual(heard, [a.id, b.id]);
      assert.equal(b.id, a.id + 1);
      assert.deepEqual(
        (await log.since(a.id))!.map((stored) => stored.event.type),
        ['subject', 'client'],
      );
      assert.deepEqual(await log.since(await log.latestId()), []);
      assert.equal(
        await log.since((await log.latestId()) + 5),
        undefined,
        'an id from the future means another log',
      );
    });

    test('hasToken finds a token event by its hash, and only a token event', async () => {
      const log = await open();
      const now = Math.floor(Date.now() / 1000);
      await log.append({ type: 'token', token_hash: 'revoked-hash', client_id: 'wl', at: now });
      await log.append({ type: 'grant', grant_id: 'grant-hash', at: now });
      assert.equal(await log.hasToken('revoked-hash'), true);
      assert.equal(await log.hasToken('grant-hash'), false);
      assert.equal(await log.hasToken('never'), false);
    });

    test('hasClientSince finds a client event at or after a time', async () => {
      const log = await open();
      await log.append({ type: 'client', client_id: 'deleted-client', at: 1000 });
      assert.equal(
        await log.hasClientSince('deleted-client', 999),
        true,
        'a token issued before the deletion',
      );
      assert.equal(await log.hasClientSince('deleted-client', 1000), true);
      assert.equal(await log.hasClientSince('deleted-client', 1001), false, 'issued after it');
      assert.equal(await log.hasClientSince('another-client', 0), false);
    });

    test('a second instance sees the same stream id and events; pruned history cannot be replayed', async () => {
      const first = await open();
      const again = await open();
      assert.equal(first.streamId, again.streamId);
      const now = Math.floor(Date.now() / 1000);
      const early = await first.append({ type: 'grant', grant_id: 'old', at: now - 7200 });
      await again.append({ type: 'grant', grant_id: 'new', at: now });
      assert.equal(await first.latestId(), await again.latestId());
      assert.equal(await first.prune(3600, 1000), 0, 'nothing young was capped away');
      assert.equal(
        await again.since(early.id - 1),
        undefined,
        'the old event is gone: a listener there must reset',
      );
      assert.deepEqual(
        (await again.since(early.id))!.map((s) => s.event),
        [{ type: 'grant', grant_id: 'new', at: now }],
      );
      for (let i = 0; i < 5; i += 1) await first.append({ type: 'grant', grant_id: `g${i}`, at: now });
      assert.ok((await first.prune(3600, 2)) >= 4, 'the cap says how many young events it removed');
      assert.equal(await first.since(early.id), undefined, 'at most maxEvents are kept');
      assert.equal((await first.since((await first.latestId()) - 2))!.length, 2);
      assert.deepEqual(
        (await again.retained()).map((s) => s.event.type === 'grant' && s.event.grant_id),
        ['g3', 'g4'],
        'retained: every event kept, oldest first',
      );
      const latest = await first.latestId();
      await first.prune(0, 0);
      assert.equal(await first.latestId(), latest, 'ids are never reused, even once the log is empty');
      assert.deepEqual(await first.since(latest), [], 'a listener that heard the latest misses nothing');
      assert.equal((await first.append({ type: 'grant', grant_id: 'after', at: now })).id, latest + 1);
    });

    test('concurrent appends from two instances get distinct ids, committed in id order', async () => {
      const [a, b] = [await open(), await open()];
      const start = await a.latestId();
      const now = Math.floor(Date.now() / 1000);
      const appended = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 ? a : b).append({ type: 'grant', grant_id: `race-${i}`, at: now }),
        ),
      );
      const ids = appended.map((stored) => stored.id).sort((x, y) => x - y);
      assert.deepEqual(
        ids,
        Array.from({ length: 20 }, (_, i) => start + 1 + i),
        'no id twice, no hole',
      );
      assert.equal((await b.since(start))!.length, 20);
    });
  });
}

contract(
  'SQLite',
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-revocations-'));
    const db = openDatabase(dir);
    return {
      open: async () => createSqliteRevocationEventLog(db),
      close: async () => {
        closeDatabase(db);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  false,
);

contract(
  'PostgreSQL',
  async () => {
    const database: TestDatabase = await createTestDatabase();
    const pools: Postgres[] = [];
    const first = connectPostgres(database.url, POOL);
    pools.push(first);
    await migrate(first, POSTGRES_MIGRATIONS);
    return {
      // Each log on a pool of its own, as two instances would be.
      open: async () => {
        const pool = connectPostgres(database.url, POOL);
        pools.push(pool);
        return postgresRevocationEventLog(pool);
      },
      close: async () => {
        for (const pool of pools) await pool.close();
        await database.drop();
      },
    };
  },
  skipPostgres,
);
