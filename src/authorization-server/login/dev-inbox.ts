/**
 * The development inbox: where mail goes when no SMTP server is configured (mailer.ts), shown at
 * /dev/inbox so that Gatehouse can be tried without a mail server. It holds sign-in codes in clear,
 * so it is bounded and forgets messages after DEV_INBOX_TTL_MS.
 *
 * Two implementations: in memory (this file; SQLite deployments are one instance, so the page
 * and the sender are the same process), and in the shared PostgreSQL database
 * (postgres-dev-inbox.ts), so that a code mailed by one instance is on the page of every other.
 */
import { randomUUID } from 'node:crypto';

export interface DevInboxMessage {
  id: string;
  to: string;
  subject: string;
  text: string;
  /** ISO 8601 time the message was "sent". */
  time: string;
}

export interface DevInbox {
  /** Keeps a message; the oldest beyond the bound go. */
  add(message: { to: string; subject: string; text: string }): Promise<void>;
  /** The kept messages, newest first; copies, so callers cannot alter the inbox. */
  list(): Promise<DevInboxMessage[]>;
}

/** How many messages the inbox keeps by default. */
export const DEV_INBOX_MAX_MESSAGES = 50;

/**
 * How long a message is kept: far longer than a sign-in code lives (login.codeTtlSeconds), and
 * short enough that codes in clear do not pile up.
 */
export const DEV_INBOX_TTL_MS = 3_600_000;

export interface DevInboxOptions {
  maxMessages?: number;
  ttlMs?: number;
  /** Clock in milliseconds since the epoch; tests inject one. */
  now?: () => number;
}

export function devInboxBounds(options: DevInboxOptions) {
  const maxMessages = options.maxMessages ?? DEV_INBOX_MAX_MESSAGES;
  const ttlMs = options.ttlMs ?? DEV_INBOX_TTL_MS;
  if (!Number.isInteger(maxMessages) || maxMessages < 1)
    throw new Error('development inbox: maxMessages must be a positive integer');
  if (!(ttlMs > 0)) throw new Error('development inbox: ttlMs must be positive');
  return { maxMessages, ttlMs, now: options.now ?? Date.now };
}

export function createMemoryDevInbox(options: DevInboxOptions = {}): DevInbox {
  const { maxMessages, ttlMs, now } = devInboxBounds(options);
  // Newest first, so listing is a copy and dropping the oldest is a pop.
  const messages: Array<DevInboxMessage & { at: number }> = [];
  const drop = () => {
    const oldest = now() - ttlMs;
    while (messages.length > 0 && messages[messages.length - 1]!.at <= oldest) messages.pop();
    if (messages.length > maxMessages) messages.length = maxMessages;
  };
  return {
    async add(message) {
      const at = now();
      messages.unshift({
        id: randomUUID(),
        to: message.to,
        subject: message.subject,
        text: message.text,
        time: new Date(at).toISOString(),
        at,
      });
      drop();
    },
    async list() {
      drop();
      return messages.map(({ at: _at, ...message }) => message);
    },
  };
}
