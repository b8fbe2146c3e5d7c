/**
 * The directory contract (directory.ts), one suite run against each store: SQLite and PostgreSQL
 * must keep the same users, domains, trusted domains, client states, registered clients, approvals
 * and removed seeds, and the seeding of seed.ts must give the same result on both. PostgreSQL runs
 * where a server is reachable (test/helpers/postgres.ts); in CI it must be. With PostgreSQL, two
 * instances seeding one database at once neither fail nor import anything twice.
 */
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { after, before, beforeEach, describe, test } from 'node:test';
import {
  createTestDatabase,
  skipWithoutPostgres,
  type TestDatabase,
} from '../../../test/helpers/postgres.ts';
import { parseConfig } from '../../shared/config/load.ts';
import { connectPostgres, type Postgres } from '../store/postgres/connection.ts';
import { migrate } from '../store/postgres/migrations.ts';
import { POSTGRES_MIGRATIONS } from '../store/postgres/schema.ts';
import type { Directory } from './directory.ts';
import { postgresDirectory } from './postgres-directory.ts';
import { seedDirectory } from './seed.ts';
import { createSqliteDirectory } from './sqlite-directory.ts';

// Before any test is declared: the runner starts the file's tests once its first ones are in.
const skipPostgres = await skipWithoutPostgres();

const POOL = { max: 4, acquireTimeoutMs: 2000, statementTimeoutMs: 10_000 };

const configWith = (section: Record<string, unknown>) =>
  parseConfig({ authorizationServer: section }).authorizationServer;

const SEEDED = configWith({
  users: {
    approved: [
      { email: 'Alice@Example.com', name: 'Alice', claims: { department: 'ops', groups: ['a', 'b'] } },
      { email: 'bob@example.com' },
    ],
    domains: [{ domain: 'corp.example', claims: { tier: 2, employee: true } }],
  },
  clientIdMetadataDocuments: { trustedDomains: ['Agents.Example', 'tools.example'] },
});

const approvalOf = (clientId: string, requestedBy: string, requestedAt: number) => ({
  clientId,
  clientClass: 'dynamic' as const,
  name: 'An agent',
  redirectUris: ['http://127.0.0.1/callback'],
  scopes: ['stocks:read'],
  metadata: { client_name: 'An agent', nested: { b: 1, a: [1, 2] } },
  requestedBy,
  requestedAt,
});

function directoryContract(fresh: () => Promise<Directory>): void {
  test('users: put, get, replace, search (letters, not wildcards), remove', async () => {
    const directory = await fresh();
    assert.equal(await directory.users.get('alice@example.com'), undefined);
    const alice = await directory.users.put({
      email: 'alice@example.com',
      name: 'Alice Martin',
      claims: { department: 'ops', groups: ['x'] },
      status: 'active',
      source: 'administrator',
    });
    assert.equal(alice.email, 'alice@example.com');
    assert.deepEqual(alice.claims, { department: 'ops', groups: ['x'] });
    assert.ok(alice.createdAt > 0 && alice.updatedAt === alice.createdAt);
    await directory.users.put({
      email: 'bob_1@example.com',
      claims: {},
      status: 'active',
      source: 'configuration',
    });
    await directory.users.put({
      email: 'bob21@example.com',
      claims: {},
      status: 'active',
      source: 'configuration',
    });
    await new Promise((resolve) => setTimeout(resolve, 5));
    const suspended = await directory.users.put({
      email: 'alice@example.com',
      claims: {},
      status: 'suspended',
      source: 'administrator',
    });
    assert.equal(suspended.name, undefined, 'a replacement without a name has none');
    assert.equal(suspended.status, 'suspended');
    assert.equal(suspended.createdAt, alice.createdAt, 'created once');
    assert.ok(suspended.updatedAt > alice.updatedAt);
    assert.deepEqual(await directory.users.get('alice@example.com'), suspended);

    const emails = async (search?: string) => (await directory.users.list(search)).map((user) => user.email);
    assert.deepEqual(await emails(), ['alice@example.com', 'bob21@example.com', 'bob_1@example.com']);
    assert.deepEqual(await emails('bob_'), ['bob_1@example.com'], '_ is a letter');
    assert.deepEqual(await emails('%'), [], '% is a letter');
    await directory.users.put({
      email: 'carol@example.com',
      name: 'Carol DOE',
      claims: {},
      status: 'active',
      source: 'administrator',
    });
    assert.deepEqual(await emails('doe'), ['carol@example.com'], 'the name matches, in any case');

    assert.equal(await directory.users.remove('alice@example.com'), true);
    assert.equal(await directory.users.remove('alice@example.com'), false);
    assert.equal(await directory.users.get('alice@example.com'), undefined);
  });

  test('domains: put, get, replace, list in order, remove', async () => {
    const directory = await fresh();
    const put = await directory.domains.put({
      domain: 'corp.example',
      claims: { tier: 1 },
      source: 'configuration',
    });
    assert.deepEqual(put.claims, { tier: 1 });
    await directory.domains.put({ domain: 'a.example', claims: {}, source: 'administrator' });
    const replaced = await directory.domains.put({
      domain: 'corp.example',
      claims: { tier: 2 },
      source: 'administrator',
    });
    assert.equal(replaced.source, 'administrator');
    assert.equal(replaced.createdAt, put.createdAt);
    assert.deepEqual((await directory.domains.get('corp.example'))?.claims, { tier: 2 });
    assert.deepEqual(
      (await directory.domains.list()).map((entry) => entry.domain),
      ['a.example', 'corp.example'],
    );
    assert.equal(await directory.domains.remove('corp.example'), true);
    assert.equal(await directory.domains.remove('corp.example'), false);
    assert.equal(await directory.domains.get('corp.example'), undefined);
  });

  test('trusted domains: added once (the first source and time stay), listed in order, removed', async () => {
    const directory = await fresh();
    const first = await directory.trustedDomains.add('tools.example', 'configuration');
    assert.equal(first.source, 'configuration');
    const again = await directory.trustedDomains.add('tools.example', 'administrator');
    assert.deepEqual(again, first);
    await directory.trustedDomains.add('agents.example', 'administrator');
    assert.deepEqual(
      (await directory.trustedDomains.list()).map((entry) => [entry.domain, entry.source]),
      [
        ['agents.example', 'administrator'],
        ['tools.example', 'configuration'],
      ],
    );
    assert.equal(await directory.trustedDomains.remove('tools.example'), true);
    assert.equal(await directory.trustedDomains.remove('tools.example'), false);
    assert.equal((await directory.trustedDomains.list()).length, 1);
  });

  test('tool rules: put (a rule or null for every user), replaced, listed in order, removed', async () => {
    const directory = await fresh();
    const put = await directory.toolRules.put({
      tool: 'place_order',
      rule: { role: ['trader', 'desk'] },
      updatedBy: 'a@x',
    });
    assert.ok(put.updatedAt > 0);
    await directory.toolRules.put({ tool: 'get_stock', rule: null, updatedBy: 'a@x' });
    await directory.toolRules.put({
      tool: 'place_order',
      rule: { level: [3], ok: [true] },
      updatedBy: 'b@x',
    });
    assert.deepEqual(
      (await directory.toolRules.list()).map(({ tool, rule, updatedBy }) => ({ tool, rule, updatedBy })),
      [
        { tool: 'get_stock', rule: null, updatedBy: 'a@x' },
        { tool: 'place_order', rule: { level: [3], ok: [true] }, updatedBy: 'b@x' },
      ],
    );
    assert.equal(await directory.toolRules.remove('get_stock'), true);
    assert.equal(await directory.toolRules.remove('get_stock'), false);
    assert.deepEqual(
      (await directory.toolRules.list()).map((entry) => entry.tool),
      ['place_order'],
    );
  });

  test('clients: disabled since the first time, enabled again; seen with the latest name', async () => {
    const directory = await fresh();
    assert.equal(await directory.clients.disabledSince('c-1'), undefined);
    await directory.clients.setDisabled('c-1', true);
    const since = await directory.clients.disabledSince('c-1');
    assert.ok(since !== undefined && since <= Date.now());
    await new Promise((resolve) => setTimeout(resolve, 5));
    await directory.clients.setDisabled('c-1', true);
    assert.equal(await directory.clients.disabledSince('c-1'), since, 'disabling again keeps the time');
    await directory.clients.setDisabled('c-2', true);
    assert.deepEqual([...(await directory.clients.listDisabled()).keys()].sort(), ['c-1', 'c-2']);
    await directory.clients.setDisabled('c-1', false);
    assert.equal(await directory.clients.disabledSince('c-1'), undefined);
    assert.deepEqual([...(await directory.clients.listDisabled()).keys()], ['c-2']);

    await directory.clients.recordSeen('c-3', 'Agent three');
    await directory.clients.recordSeen('c-4', undefined);
    const seen = await directory.clients.listSeen();
    assert.deepEqual(seen.map((client) => client.clientId).sort(), ['c-3', 'c-4']);
    const three = seen.find((client) => client.clientId === 'c-3')!;
    assert.equal(three.name, 'Agent three');
    assert.ok(three.firstSeenAt === three.lastUsedAt);
    assert.equal(seen.find((client) => client.clientId === 'c-4')!.name, undefined);
  });

  test('forget drops a client entirely; forgetSeen only that it was seen', async () => {
    const directory = await fresh();
    for (const id of ['c-1', 'c-2']) {
      await directory.clients.setDisabled(id, true);
      await directory.clients.recordSeen(id, id);
      await directory.approvals.request(approvalOf(id, 'alice@example.com', 1000));
    }
    await directory.clients.forget('c-1');
    await directory.clients.forgetSeen('c-2');
    assert.equal(await directory.clients.disabledSince('c-1'), undefined);
    assert.equal(await directory.approvals.get('c-1'), undefined);
    assert.ok((await directory.clients.disabledSince('c-2')) !== undefined, 'c-2 stays disabled');
    assert.equal((await directory.approvals.get('c-2'))?.status, 'pending', 'and keeps its approval');
    assert.deepEqual(await directory.clients.listSeen(), []);
    // Seen again after forgetSeen: written at once, not held back by the write throttle.
    await directory.clients.recordSeen('c-2', 'back');
    assert.equal((await directory.clients.listSeen())[0]?.name, 'back');
  });

  test('registered clients: added with their metadata, an id taken twice fails, removed', async () => {
    const directory = await fresh();
    const metadata = {
      client_id: 'partner-agent',
      client_name: 'Partner',
      redirect_uris: ['https://p.example/cb'],
    };
    const added = await directory.registeredClients.add({
      clientId: 'partner-agent',
      role: 'agent',
      metadata,
      createdBy: 'client:gatehouse-admin',
    });
    assert.equal(added.role, 'agent');
    assert.deepEqual(added.metadata, metadata);
    assert.deepEqual(await directory.registeredClients.get('partner-agent'), added);
    await assert.rejects(
      directory.registeredClients.add({
        clientId: 'partner-agent',
        role: 'workload',
        metadata: {},
        createdBy: 'x',
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 5));
    await directory.registeredClients.add({
      clientId: 'second',
      role: 'workload',
      metadata: {},
      createdBy: 'y',
    });
    assert.deepEqual(
      (await directory.registeredClients.list()).map((client) => client.clientId),
      ['second', 'partner-agent'],
      'newest first',
    );
    assert.equal(await directory.registeredClients.remove('partner-agent'), true);
    assert.equal(await directory.registeredClients.remove('partner-agent'), false);
    assert.equal(await directory.registeredClients.get('partner-agent'), undefined);
  });

  test('approvals: queued, refreshed while pending; a decided one keeps its decision', async () => {
    const directory = await fresh();
    const queued = await directory.approvals.request(approvalOf('c-1', 'alice@example.com', 1000));
    assert.equal(queued.status, 'pending');
    assert.deepEqual(queued.metadata, { client_name: 'An agent', nested: { b: 1, a: [1, 2] } });
    assert.deepEqual(queued.redirectUris, ['http://127.0.0.1/callback']);
    const refreshed = await directory.approvals.request(approvalOf('c-1', 'bob@example.com', 2000));
    assert.equal(refreshed.requestedBy, 'bob@example.com');
    assert.equal(refreshed.requestedAt, 2000);
    assert.equal(refreshed.decidedBy, undefined);

    const decided = await directory.approvals.decide('c-1', 'denied', 'admin:carol@example.com');
    assert.equal(decided?.status, 'denied');
    assert.equal(decided?.decidedBy, 'admin:carol@example.com');
    assert.ok(decided?.decidedAt !== undefined);
    const again = await directory.approvals.request(approvalOf('c-1', 'mallory@example.com', 3000));
    assert.equal(again.status, 'denied', 'asking again does not undo a denial');
    assert.equal(again.requestedBy, 'bob@example.com');
    assert.deepEqual(await directory.approvals.get('c-1'), again);

    await directory.approvals.request(approvalOf('c-2', 'alice@example.com', 4000));
    assert.deepEqual(
      (await directory.approvals.list()).map((approval) => approval.clientId),
      ['c-2', 'c-1'],
      'newest request first',
    );
    assert.deepEqual(
      (await directory.approvals.list('pending')).map((approval) => approval.clientId),
      ['c-2'],
    );
    assert.equal((await directory.approvals.decide('c-2', 'approved', 'x'))?.status, 'approved');
    assert.equal(await directory.approvals.decide('nobody', 'approved', 'x'), undefined);
    assert.equal(await directory.approvals.get('nobody'), undefined);
  });

  test('seed tombstones: marked once, held, cleared', async () => {
    const directory = await fresh();
    assert.equal(await directory.seeds.wasRemoved('user', 'alice@example.com'), false);
    await directory.seeds.markRemoved('user', 'alice@example.com');
    await directory.seeds.markRemoved('user', 'alice@example.com');
    assert.equal(await directory.seeds.wasRemoved('user', 'alice@example.com'), true);
    assert.equal(await directory.seeds.wasRemoved('domain', 'alice@example.com'), false, 'per kind');
    await directory.seeds.clearRemoved('user', 'alice@example.com');
    assert.equal(await directory.seeds.wasRemoved('user', 'alice@example.com'), false);
  });

  test('seeding imports the file once, keeps removed seeds removed, and leaves administrators’ entries', async () => {
    const directory = await fresh();
    assert.deepEqual(await seedDirectory(directory, SEEDED), {
      users: 2,
      domains: 1,
      trustedDomains: 2,
      removed: 0,
    });
    const alice = await directory.users.get('alice@example.com');
    assert.equal(alice?.source, 'configuration');
    assert.deepEqual(alice?.claims, { department: 'ops', groups: ['a', 'b'] });
    assert.deepEqual(
      (await directory.trustedDomains.list()).map((entry) => entry.domain),
      ['agents.example', 'tools.example'],
    );
    // Unchanged (whatever order the store keeps JSON keys in): nothing written again.
    assert.deepEqual(await seedDirectory(directory, SEEDED), {
      users: 0,
      domains: 0,
      trustedDomains: 0,
      removed: 0,
    });

    // An administrator removes bob and a trusted domain (with tombstones), takes over alice.
    await directory.users.remove('bob@example.com');
    await directory.seeds.markRemoved('user', 'bob@example.com');
    await directory.trustedDomains.remove('tools.example');
    await directory.seeds.markRemoved('trusted-domain', 'tools.example');
    await directory.users.put({
      email: 'alice@example.com',
      claims: { mine: true },
      status: 'active',
      source: 'administrator',
    });
    assert.deepEqual(await seedDirectory(directory, SEEDED), {
      users: 0,
      domains: 0,
      trustedDomains: 0,
      removed: 0,
    });
    assert.equal(await directory.users.get('bob@example.com'), undefined, 'a removed seed stays removed');
    assert.deepEqual(
      (await directory.trustedDomains.list()).map((entry) => entry.domain),
      ['agents.example'],
    );
    assert.deepEqual((await directory.users.get('alice@example.com'))?.claims, { mine: true });

    // The file drops the domain: a configuration entry goes with it.
    const fewer = configWith({
      users: { approved: SEEDED.users.approved, domains: [] },
      clientIdMetadataDocuments: { trustedDomains: ['agents.example', 'tools.example'] },
    });
    assert.deepEqual(await seedDirectory(directory, fewer), {
      users: 0,
      domains: 0,
      trustedDomains: 0,
      removed: 1,
    });
    assert.equal(await directory.domains.get('corp.example'), undefined);
  });

  test('exclusively: a unit that fails keeps none of its changes', async () => {
    const directory = await fresh();
    await assert.rejects(
      directory.exclusively(async (inside) => {
        await inside.users.put({
          email: 'dan@example.com',
          claims: {},
          status: 'active',
          source: 'administrator',
        });
        await inside.trustedDomains.add('dan.example', 'administrator');
        throw new Error('stop');
      }),
      /stop/,
    );
    assert.deepEqual(await directory.trustedDomains.list(), []);
    assert.equal(await directory.users.get('dan@example.com'), undefined);
    assert.deepEqual(
      (await directory.users.list()).map((user) => user.email),
      [],
    );
  });
}

describe('the SQLite directory', () => {
  directoryContract(async () => createSqliteDirectory(new DatabaseSync(':memory:')));
});

describe('the PostgreSQL directory', { skip: skipPostgres }, () => {
  let database: TestDatabase;
  let postgres: Postgres;
  before(async () => {
    database = await createTestDatabase();
    postgres = connectPostgres(database.url, POOL);
    await migrate(postgres, POSTGRES_MIGRATIONS);
  });
  after(async () => {
    await postgres?.close();
    await database?.drop();
  });
  beforeEach(async () => {
    await postgres.query(
      `TRUNCATE directory_users, directory_domains, directory_trusted_domains, directory_removed_seeds,
         client_states, seen_clients, registered_clients, client_approvals`,
    );
  });

  directoryContract(async () => postgresDirectory(postgres));

  test('two instances on one database: a change at one holds at the other at once', async () => {
    const other = connectPostgres(database.url, POOL);
    try {
      const first = postgresDirectory(postgres);
      const second = postgresDirectory(other);
      await first.clients.setDisabled('c-1', true);
      assert.ok((await second.clients.disabledSince('c-1')) !== undefined);
      await first.users.put({
        email: 'erin@example.com',
        claims: {},
        status: 'active',
        source: 'administrator',
      });
      assert.equal((await second.users.get('erin@example.com'))?.status, 'active');
      await second.users.put({
        email: 'erin@example.com',
        claims: {},
        status: 'suspended',
        source: 'administrator',
      });
      assert.equal((await first.users.get('erin@example.com'))?.status, 'suspended');
      await second.registeredClients.add({
        clientId: 'partner',
        role: 'agent',
        metadata: { a: 1 },
        createdBy: 'x',
      });
      assert.deepEqual((await first.registeredClients.get('partner'))?.metadata, { a: 1 });
    } finally {
      await other.close();
    }
  });

  test('two instances seeding one database at once: no failure, nothing twice', async () => {
    const pools = [connectPostgres(database.url, POOL), connectPostgres(database.url, POOL)];
    try {
      const results = await Promise.all(pools.map((pool) => seedDirectory(postgresDirectory(pool), SEEDED)));
      // One imported everything; the other waited for it, then found nothing left to do.
      const imported = results.map((result) => result.users + result.domains + result.trustedDomains);
      assert.deepEqual(imported.sort(), [0, 5], JSON.stringify(results));
      const counts = await postgres.query<{ users: number; domains: number; trusted: number }>(
        `SELECT (SELECT count(*)::int FROM directory_users) AS users,
                (SELECT count(*)::int FROM directory_domains) AS domains,
                (SELECT count(*)::int FROM directory_trusted_domains) AS trusted`,
      );
      assert.deepEqual(counts[0], { users: 2, domains: 1, trusted: 2 });
      // And again, with an administrator's removal in between: the tombstone holds for both.
      await postgresDirectory(postgres).users.remove('bob@example.com');
      await postgresDirectory(postgres).seeds.markRemoved('user', 'bob@example.com');
      await Promise.all(pools.map((pool) => seedDirectory(postgresDirectory(pool), SEEDED)));
      assert.equal(await postgresDirectory(postgres).users.get('bob@example.com'), undefined);
    } finally {
      await Promise.all(pools.map((pool) => pool.close()));
    }
  });

  test('JSON columns are jsonb', async () => {
    const rows = await postgres.query<{ table_name: string; column_name: string; data_type: string }>(
      `SELECT table_name, column_name, data_type FROM information_schema.columns
       WHERE column_name IN ('claims', 'metadata', 'redirect_uris', 'scopes') AND table_schema = 'public'
         AND table_name IN ('directory_users', 'directory_domains', 'registered_clients', 'client_approvals')`,
    );
    assert.equal(rows.length, 6);
    assert.ok(
      rows.every((row) => row.data_type === 'jsonb'),
      JSON.stringify(rows),
    );
  });
});
