/**
 * WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside the commit that
 * crosses the threshold, on the connection that committed: with `node:sqlite` that is the server's
 * only thread, and copying megabytes of WAL into the database with an fsync stalled every request
 * for seconds under load (a `test:load` run saw the authorization server silent for 3.8 s). Here
 * the automatic checkpoint is off and a worker thread, with a connection of its own, runs a
 * PASSIVE checkpoint every second (SQLite, "wal.html" §3.3: it never blocks the writer; what a
 * reader still needs waits for the next one). Durability does not change: a commit is in the WAL.
 */
import { Worker } from 'node:worker_threads';

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { DatabaseSync } = require('node:sqlite');
const db = new DatabaseSync(workerData.file);
db.exec('PRAGMA busy_timeout = 5000');
const run = () => {
  try { db.exec('PRAGMA wal_checkpoint(PASSIVE)'); } catch {}
};
const timer = setInterval(run, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  run();
  db.close();
  parentPort.postMessage('closed');
});
`;

export interface Checkpointer {
  stop(): Promise<void>;
}

export function startCheckpointer(file: string, intervalMs = 1000): Checkpointer {
  const worker = new Worker(WORKER, { eval: true, workerData: { file, intervalMs } });
  worker.unref();
  // A checkpoint that cannot run (the file gone, a test's directory removed) costs nothing but
  // the WAL's size: the next start checkpoints it.
  worker.on('error', () => {});
  let stopping: Promise<void> | undefined;
  return {
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        const done = () => {
          void worker.terminate().then(() => resolve());
        };
        worker.once('message', done);
        worker.once('error', done);
        worker.once('exit', () => resolve());
        worker.postMessage('stop');
        setTimeout(done, 2000).unref();
      });
      return stopping;
    },
  };
}
