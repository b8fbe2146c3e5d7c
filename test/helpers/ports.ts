/**
 * Free loopback ports for tests that must know a port before the server that takes it starts (a
 * configuration names every component's URL up front).
 *
 * A port the kernel hands out for `listen(0)` comes from the ephemeral range, the same range every
 * outgoing connection takes its local port from: between picking and binding, another suite's
 * connection can take it (CI saw "port … is already in use" this way). So ports are picked at
 * random below the ephemeral range, where no outgoing connection lands, checked free by binding,
 * and never handed out twice by one process.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const handedOut = new Set<number>();

/** The lowest port of the kernel's ephemeral range (Linux default 32768). */
function ephemeralLow(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const value = Number(low);
    return Number.isInteger(value) && value > 11_000 ? value : 32_768;
  } catch {
    return 32_768;
  }
}

const rangeLow = 10_000;
const rangeHigh = ephemeralLow() - 1;

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A loopback port free now, outside the ephemeral range, not handed out before by this process. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const port = rangeLow + Math.floor(Math.random() * (rangeHigh - rangeLow + 1));
    if (handedOut.has(port)) continue;
    if (await bindable(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free loopback port found between ${rangeLow} and ${rangeHigh}`);
}
