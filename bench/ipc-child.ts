/**
 * The child's side of the IPC channel every bench server process speaks with bench/child.ts
 * (started with `fork`):
 *
 *   → { type: 'ready', info }      once listening (info: whatever the parent needs, e.g. key files)
 *   ← { type: 'cpu' }  → { type: 'cpu', usage }   process.cpuUsage() (all threads), for CPU accounting
 *   ← { type: 'stop' }             closes everything and exits 0
 *   → { type: 'error', message }   start-up failed (then exits 1)
 *
 * Kept free of Gatehouse code, so that the independent baseline's processes (bench/baseline/) can
 * use it and still load nothing of the product. Exiting through `process.exit` after a clean close
 * is what lets `--cpu-prof` write its profile.
 */

export type ParentMessage = { type: 'cpu' } | { type: 'stop' };
export type ChildMessage =
  | { type: 'ready'; info: Record<string, unknown> }
  | { type: 'cpu'; usage: NodeJS.CpuUsage }
  | { type: 'error'; message: string };

export interface Started {
  info?: Record<string, unknown>;
  close(): Promise<void>;
}

const send = (message: ChildMessage) => process.send?.(message);

/** Starts the server with `start` and answers the parent until it says stop (or goes away). */
export function serveParent(start: () => Promise<Started>): void {
  if (!process.send) throw new Error('a bench server process must be started with fork (IPC channel)');
  start().then(
    (started) => {
      let stopping = false;
      const stop = () => {
        if (stopping) return;
        stopping = true;
        started.close().then(
          () => process.exit(0),
          (error: unknown) => {
            console.error(`bench server process: close failed: ${(error as Error).message}`);
            process.exit(1);
          },
        );
      };
      process.on('message', (message: ParentMessage) => {
        if (message.type === 'cpu') send({ type: 'cpu', usage: process.cpuUsage() });
        if (message.type === 'stop') stop();
      });
      // The parent went away without saying stop (it crashed, or was interrupted): do not linger.
      process.on('disconnect', stop);
      send({ type: 'ready', info: started.info ?? {} });
    },
    (error: unknown) => {
      // Exit once the message is out: sending is asynchronous.
      const message: ChildMessage = { type: 'error', message: (error as Error).stack ?? String(error) };
      process.send!(message, undefined, {}, () => process.exit(1));
    },
  );
}
