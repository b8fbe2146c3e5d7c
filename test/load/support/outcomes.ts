/**
 * How every answer is judged, and the tallies a scenario keeps of them.
 *
 * - A valid call (a real token) is ok when answered 2xx with a JSON-RPC result (for tools/call: a
 *   result that is not `isError`). Refused (401, 403, 429) or failed (5xx, a JSON-RPC error, an
 *   error result, a reset, a timeout): a failure, named by what happened.
 * - A bogus token must be refused (401, or 429/503 when the gateway limits token checks), never
 *   answered with a result: a result is a request "let through without a valid token".
 */
import { type McpMethod, rpcMessage } from './agent.ts';
import type { Outcome } from './http.ts';

export interface Verdict {
  ok: boolean;
  /** What happened, e.g. `ok`, `HTTP 401`, `reset (ECONNRESET)`, `error result`. */
  label: string;
  status?: number;
  retryAfter?: boolean;
}

export function connectionLabel(code: string): string {
  return `connection ${code}`;
}

export function judgeValid(outcome: Outcome, method: McpMethod): Verdict {
  if (outcome.error) return { ok: false, label: connectionLabel(outcome.error.code) };
  const { status } = outcome.answer;
  const retryAfter = outcome.answer.headers['retry-after'] !== undefined;
  if (status < 200 || status > 299) return { ok: false, label: `HTTP ${status}`, status, retryAfter };
  const message = rpcMessage(outcome.answer);
  if (!message) return { ok: false, label: 'no JSON-RPC message', status };
  if (message.error) return { ok: false, label: 'JSON-RPC error', status };
  const result = message.result as { tools?: unknown[]; isError?: boolean; content?: unknown } | undefined;
  if (!result) return { ok: false, label: 'no result', status };
  if (method === 'tools/list' && !Array.isArray(result.tools))
    return { ok: false, label: 'no tools', status };
  if (method === 'tools/call' && result.isError) return { ok: false, label: 'error result', status };
  return { ok: true, label: 'ok', status };
}

/** True when a bogus-token request got something only a valid token may get. */
export function letThrough(outcome: Outcome): boolean {
  if (!outcome.answer) return false;
  const { status } = outcome.answer;
  // Any 2xx: the request reached the MCP server as if authorized, whatever it then answered.
  return status >= 200 && status <= 299;
}

export function judgeBogus(outcome: Outcome): Verdict {
  if (outcome.error) return { ok: false, label: connectionLabel(outcome.error.code) };
  const { status } = outcome.answer;
  const retryAfter = outcome.answer.headers['retry-after'] !== undefined;
  if (letThrough(outcome)) return { ok: false, label: 'LET THROUGH', status };
  if (status === 401) return { ok: true, label: 'HTTP 401', status };
  if ((status === 429 || status === 503) && retryAfter) {
    return { ok: true, label: `HTTP ${status} with Retry-After`, status, retryAfter };
  }
  return { ok: false, label: `HTTP ${status}`, status, retryAfter };
}

/** Counts per kind and label, and the first few examples of each failure. */
export class Tally {
  readonly counts = new Map<string, Map<string, number>>();
  readonly examples = new Map<string, string>();

  add(kind: string, label: string, example?: string): void {
    let labels = this.counts.get(kind);
    if (!labels) {
      labels = new Map();
      this.counts.set(kind, labels);
    }
    labels.set(label, (labels.get(label) ?? 0) + 1);
    const key = `${kind}: ${label}`;
    if (example !== undefined && !this.examples.has(key)) this.examples.set(key, example.slice(0, 300));
  }

  count(kind: string, label?: string): number {
    const labels = this.counts.get(kind);
    if (!labels) return 0;
    if (label !== undefined) return labels.get(label) ?? 0;
    return [...labels.values()].reduce((a, b) => a + b, 0);
  }

  /** Everything under `kind` except `label`s for which `keep` says false. */
  countWhere(kind: string, keep: (label: string) => boolean): number {
    let total = 0;
    for (const [label, count] of this.counts.get(kind) ?? []) if (keep(label)) total += count;
    return total;
  }

  /** `kind`: label × count, label × count, … */
  describe(kind: string): string {
    const labels = this.counts.get(kind);
    if (!labels || labels.size === 0) return 'none';
    return [...labels]
      .sort((a, b) => b[1] - a[1])
      .map(([label, count]) => `${label} × ${count}`)
      .join(', ');
  }

  toJSON(): Record<string, Record<string, number>> {
    return Object.fromEntries([...this.counts].map(([kind, labels]) => [kind, Object.fromEntries(labels)]));
  }
}

/** Loopback source addresses, one per simulated machine: 127.<block>.x.y, counting up. */
export class Addresses {
  private n = 0;
  private readonly block: number;
  constructor(block: number) {
    this.block = block;
  }
  next(): string {
    // Skip .0 and .255 in the last octet: valid on lo, but easy to mistake for network or broadcast.
    const index = this.n++;
    const host = (index % 254) + 1;
    const third = Math.floor(index / 254) % 256;
    return `127.${this.block}.${third}.${host}`;
  }
}
