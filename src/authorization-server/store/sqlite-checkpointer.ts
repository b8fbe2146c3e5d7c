/**
 * WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside the commit that
 * crosses the threshold, on the connection that committed: with `node:sqlite` that is the server's
 * only thread, and copying megabytes of WAL into the database with an fsync stalled every request
 * for seconds under load (a `test:load` run saw the authorization server silent for 3.8 s). Here
 * the automatic checkpoint is off and a worker thread, with a connection of its own, runs a
 * PASSIVE checkpoint every second (SQLite, "wal.html" §3.3: it never blocks the writer; what a
 * reader still needs waits for the next one). Durability does not change: a commit is in the WAL.
 *
 * Stopping is synchronous, and the worker's connection is closed when `stop` returns: the
 * server's own connection must be the last one to close, so that its TRUNCATE checkpoint leaves
 * the file whole and SQLite removes the -wal and -shm files. A worker still starting, or still
 * open, after the server closed would create them again in a directory that is being removed.
 */
import { Worker } from 'node:worker_threads';

/** The shared state word: what the server asked for, and what the worker did. */
const RUNNING = 0;
const STOP_REQUESTED = 1;
const CLOSED = 2;

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { DatabaseSync } = require('node:sqlite');
const state = new Int32Array(workerData.state);
const finish = () => {
  Atomics.store(state, 0, ${CLOSED});
  Atomics.notify(state, 0);
  parentPort.close();
};
if (Atomics.load(state, 0) !== ${RUNNING}) {
  // Stopped before it started: never open a connection.
  finish();
} else {
  let db;
  try {
    db = new DatabaseSync(workerData.file);
    db.exec('PRAGMA busy_timeout = 1000');
  } catch {
    db = undefined;
  }
  const stop = () => {
    clearInterval(timer);
    try { db?.close(); } catch {}
    finish();
  };
  const timer = setInterval(() => {
    if (Atomics.load(state, 0) !== ${RUNNING}) return stop();
    try { db?.exec('PRAGMA wal_checkpoint(PASSIVE)'); } catch {}
  }, workerData.intervalMs);
  parentPort.on('message', stop);
  if (Atomics.load(state, 0) !== ${RUNNING}) stop();
}
`;

export interface Checkpointer {
  /** Stops the worker and closes its connection before returning (at most `timeoutMs` of waiting). */
  stop(timeoutMs?: number): void;
}

export function startCheckpointer(file: string, intervalMs = 1000): Checkpointer {
  const state = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(WORKER, { eval: true, workerData: { file, intervalMs, state: state.buffer } });
  worker.unref();
  // A checkpoint that cannot run costs nothing but the WAL's size: the server's own TRUNCATE
  // checkpoint at close, or the next start, catches up.
  worker.on('error', () => {});
  return {
    stop(timeoutMs = 5000) {
      if (Atomics.compareExchange(state, 0, RUNNING, STOP_REQUESTED) === RUNNING) worker.postMessage('stop');
      // Blocking the server's thread here is the point: close must not return while the worker
      // holds the file. A checkpoint in progress finishes first (its busy timeout is 1 s); a worker
      // still booting sees the flag and ends without opening anything.
      const deadline = Date.now() + timeoutMs;
      while (Atomics.load(state, 0) !== CLOSED) {
        const left = deadline - Date.now();
        if (left <= 0) {
          void worker.terminate();
          return;
        }
        Atomics.wait(state, 0, STOP_REQUESTED, left);
      }
    },
  };
}
