/**
 * Structured logging: one JSON object per line on stderr, so logs can be shipped as they are.
 *
 * Security invariant: no token, code or secret is ever logged. Fields whose names say they hold
 * such a value are replaced by "[redacted]" before the line is written, whatever the caller passed.
 */
import { writeSync } from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** One line per security event (login, consent, token issued, ...): `event` names it, `outcome` says how it ended. */
  audit(event: string, fields: LogFields & { outcome: 'success' | 'failure' | 'denied' }): void;
  child(fields: LogFields): Logger;
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Key names (lower-cased, separators removed) whose values are secrets, whatever their spelling. */
const SENSITIVE_SUFFIXES = [
  'token',
  'secret',
  'password',
  'assertion',
  'authorization',
  'cookie',
  'verifier',
  'privatekey',
  'jwt',
  'otp',
];
const SENSITIVE_EXACT = new Set(['code', 'authorizationcode', 'usercode', 'devicecode', 'key', 'jwk', 'd']);

/** True for `access_token`, `accessToken`, `client-secret`, `code`, `Authorization`, … */
export function isSensitiveKey(key: string): boolean {
  let known = sensitivity.get(key);
  if (known === undefined) {
    const folded = key.toLowerCase().replace(/[_-]/g, '');
    const plural = folded.endsWith('s') ? folded.slice(0, -1) : folded;
    known = SENSITIVE_EXACT.has(folded) || SENSITIVE_SUFFIXES.some((suffix) => plural.endsWith(suffix));
    // Field names come from code, so there are few; the bound only guards against names from input.
    if (sensitivity.size >= 10_000) sensitivity.clear();
    sensitivity.set(key, known);
  }
  return known;
}

/** Each key's answer, decided once: every log line asks about the same few dozen names. */
const sensitivity = new Map<string, boolean>();

/** Replaces the values of sensitive-looking keys, recursively, with "[redacted]". */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 5 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const inner = (value as Record<string, unknown>)[key];
    out[key] =
      inner === undefined
        ? undefined
        : isSensitiveKey(key)
          ? '[redacted]'
          : typeof inner === 'object'
            ? redact(inner, depth + 1)
            : inner;
  }
  return out;
}

/**
 * Lines for stderr, written together once per turn of the event loop. Writes to a pipe or a file
 * are synchronous system calls on Linux, one per line, and under load a component logs several
 * lines per turn (a request line at each hop): one write for all of them costs a fraction. What is
 * pending when the process exits (even by `process.exit`, or a crash) is written synchronously then.
 */
const pending: string[] = [];
let scheduled = false;
function flushPending(): void {
  scheduled = false;
  if (pending.length === 0) return;
  const text = `${pending.join('\n')}\n`;
  pending.length = 0;
  process.stderr.write(text);
}
function flushPendingNow(): void {
  if (pending.length === 0) return;
  const text = `${pending.join('\n')}\n`;
  pending.length = 0;
  try {
    writeSync(2, text);
  } catch {
    // stderr is gone (closed pipe): nothing left to tell.
  }
}
process.once('exit', flushPendingNow);

function writeToStderr(line: string): void {
  pending.push(line);
  // A bound, so a burst never holds much in memory.
  if (pending.length >= 256) {
    flushPending();
    return;
  }
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushPending);
  }
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; defaults to stderr. Tests pass a collector. */
  write?: (line: string) => void;
}

/**
 * Redaction while the line is serialized, at every depth: no copy of the fields is made (this runs
 * for every request at every hop), arrays stay arrays, dates are written as themselves, and URLs
 * without their user info and query. Exported for the authorization server's audit trail, which
 * stores what it records by the same rule.
 */
export function redactingReplacer(this: unknown, key: string, value: unknown): unknown {
  if (key !== '' && value !== undefined && isSensitiveKey(key)) return '[redacted]';
  // `value` is what toJSON made of it; the holder still has the original. A URL's user info and
  // query may hold a password, a code or a token: only its origin and path are written.
  const original = (this as Record<string, unknown> | undefined)?.[key];
  if (original instanceof URL) return `${original.origin}${original.pathname}`;
  return value;
}

export function createLogger(component: string, options: LoggerOptions = {}, base: LogFields = {}): Logger {
  // GATEHOUSE_LOG_LEVEL wins over the configuration, to turn on debug output without editing a file.
  const threshold = LEVELS[(process.env.GATEHOUSE_LOG_LEVEL as LogLevel) || options.level || 'info'] ?? 20;
  const write = options.write ?? writeToStderr;

  const emit = (level: LogLevel, message: string, fields: LogFields = {}) => {
    if (LEVELS[level] < threshold) return;
    const record = { time: new Date().toISOString(), level, component, message, ...base, ...fields };
    write(JSON.stringify(record, redactingReplacer));
  };

  return {
    debug: (message, fields) => emit('debug', message, fields),
    info: (message, fields) => emit('info', message, fields),
    warn: (message, fields) => emit('warn', message, fields),
    error: (message, fields) => emit('error', message, fields),
    audit: (event, fields) =>
      emit(fields.outcome === 'success' ? 'info' : 'warn', 'audit', { event, ...fields }),
    child: (fields) => createLogger(component, options, { ...base, ...fields }),
  };
}
