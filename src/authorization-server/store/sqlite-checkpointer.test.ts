import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, test } from 'node:test';
import { closeDatabase, openDatabase } from './sqlite-store.ts';

const dirs: string[] = [];
afterEach(() => {
  // No retries: a file that appears after close is the defect these tests are for.
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'gatehouse-checkpointer-'));
  dirs.push(dir);
  return dir;
}

function fill(db: DatabaseSync, rows: number): void {
  db.exec('CREATE TABLE IF NOT EXISTS filler (body TEXT)');
  const insert = db.prepare('INSERT INTO filler (body) VALUES (?)');
  for (let i = 0; i < rows; i++) insert.run('x'.repeat(2000));
}

test('with background checkpoints the commits stay in the WAL until the worker copies them into the file', async () => {
  const dir = dataDir();
  const db = openDatabase(dir, { backgroundCheckpoints: true });
  const file = path.join(dir, 'gatehouse.db');
  const before = fs.statSync(file).size;
  fill(db, 500);
  // No checkpoint inside the commits: the database file has not grown.
  assert.equal(fs.statSync(file).size, before);
  const deadline = Date.now() + 10_000;
  while (fs.statSync(file).size <= before && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 100));
  assert.ok(fs.statSync(file).size > before + 500 * 2000, 'the worker checkpointed the WAL into the file');
  closeDatabase(db);
});

test('closeDatabase returns with the worker closed: no -wal or -shm file is left or comes back', async () => {
  const dir = dataDir();
  const db = openDatabase(dir, { backgroundCheckpoints: true });
  fill(db, 50);
  // Long enough for the worker to have opened its connection.
  await new Promise((r) => setTimeout(r, 300));
  closeDatabase(db);
  assert.deepEqual(fs.readdirSync(dir), ['gatehouse.db']);
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual(fs.readdirSync(dir), ['gatehouse.db']);
  const reopened = new DatabaseSync(path.join(dir, 'gatehouse.db'));
  assert.equal((reopened.prepare('SELECT count(*) AS n FROM filler').get() as { n: number }).n, 50);
  reopened.close();
});

test('a database closed before its worker started: the worker never opens the file', async () => {
  for (let i = 0; i < 5; i++) {
    const dir = dataDir();
    closeDatabase(openDatabase(dir, { backgroundCheckpoints: true }));
    fs.rmSync(dir, { recursive: true });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(fs.existsSync(dir), false, 'nothing recreated the directory or its files');
  }
});

test('without the option SQLite checkpoints by itself and no worker is started', () => {
  const dir = dataDir();
  const db = openDatabase(dir);
  assert.equal(
    (db.prepare('PRAGMA wal_autocheckpoint').get() as Record<string, number>).wal_autocheckpoint,
    1000,
  );
  db.close();
  assert.deepEqual(fs.readdirSync(dir), ['gatehouse.db']);
});
