/**
 * The check that no secret a test file handled reached a log line (design §3: no token, code,
 * secret or one-time code in logs).
 *
 * A file records every secret value it sees in a SecretLedger (tokens, authorization codes, PKCE
 * verifiers, client secrets and their Basic headers, client assertions, registration access tokens,
 * one-time sign-in codes) and watches the servers it starts. `declareLeakCheck` adds a last test to
 * the file that scans every collected log line for every value, so a leak anywhere in the file fails
 * the file, whichever case caused it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

/** Something that collects log lines: a TestAuthorizationServer, a TestStack, TestApis. */
export interface LogSource {
  logs: string[];
}

/** Where one-time codes were mailed: the development inbox of a running authorization server. */
export interface InboxSource {
  running: { devInbox: { list(): Promise<Array<{ text: string }>> } | undefined };
}

/** Fields of OAuth responses and requests whose values are secrets. */
const SECRET_FIELDS = [
  'access_token',
  'refresh_token',
  'id_token',
  'code',
  'code_verifier',
  'client_secret',
  'client_assertion',
  'registration_access_token',
  'subject_token',
  'actor_token',
  'token',
];

/** Shorter values would match by accident (a port, a word); no real secret is this short. */
const MINIMUM_SECRET_LENGTH = 8;

export class SecretLedger {
  readonly #values = new Set<string>();
  readonly #oneTimeCodes = new Set<string>();
  readonly #logSources: LogSource[] = [];
  readonly #inboxes: InboxSource[] = [];

  /** Remembers values that must never be logged; non-strings and short strings are ignored. */
  remember(...values: unknown[]): void {
    for (const value of values) {
      if (typeof value === 'string' && value.length >= MINIMUM_SECRET_LENGTH) this.#values.add(value);
    }
  }

  /** Remembers the secret fields of a token, registration or form body. */
  rememberFields(fields: Record<string, unknown> | URLSearchParams | undefined): void {
    if (!fields) return;
    for (const name of SECRET_FIELDS) {
      this.remember(fields instanceof URLSearchParams ? fields.get(name) : fields[name]);
    }
  }

  /** A six-digit sign-in code: matched as a whole number only, so it cannot match inside a longer one. */
  rememberOneTimeCode(code: string): void {
    if (/^\d{6}$/.test(code)) this.#oneTimeCodes.add(code);
  }

  /** Collects this source's log lines (and, for an authorization server, its mailed codes) at the check. */
  watch(source: LogSource & Partial<InboxSource>): void {
    this.#logSources.push(source);
    if (source.running && 'devInbox' in source.running) this.#inboxes.push(source as InboxSource);
  }

  /** Reads the one-time codes from the watched development inboxes (call before a server restarts). */
  async harvestOneTimeCodes(): Promise<void> {
    for (const inbox of this.#inboxes) {
      for (const message of (await inbox.running.devInbox?.list()) ?? []) {
        for (const code of message.text.match(/\b\d{6}\b/g) ?? []) this.rememberOneTimeCode(code);
      }
    }
  }

  get size(): number {
    return this.#values.size;
  }

  get oneTimeCodes(): number {
    return this.#oneTimeCodes.size;
  }

  /** Fails on the first log line that contains a remembered value. */
  async check(expect: { minimumSecrets: number; oneTimeCodes: boolean }): Promise<void> {
    await this.harvestOneTimeCodes();
    assert.ok(
      this.#values.size >= expect.minimumSecrets,
      `only ${this.#values.size} secret values were collected; the check would prove little`,
    );
    if (expect.oneTimeCodes) assert.ok(this.#oneTimeCodes.size > 0, 'no one-time code was collected');
    const lines = this.#logSources.flatMap((source) => source.logs);
    assert.ok(lines.length > 0, 'no log line was collected');
    const codePatterns = [...this.#oneTimeCodes].map((code) => new RegExp(`(^|\\D)${code}(\\D|$)`));
    for (const line of lines) {
      for (const value of this.#values) {
        assert.ok(!line.includes(value), `a secret value appears in a log line: ${line.slice(0, 300)}`);
      }
      for (const pattern of codePatterns) {
        assert.ok(!pattern.test(line), `a one-time code appears in a log line: ${line.slice(0, 300)}`);
      }
    }
  }
}

/**
 * Declares the file's last test: no value in the ledger appears in any watched log. Call it after
 * the file's other tests are declared; `minimumSecrets` keeps the check from passing vacuously.
 */
export function declareLeakCheck(
  ledger: SecretLedger,
  expect: { minimumSecrets: number; oneTimeCodes: boolean },
): void {
  test('logs: no token, code, secret, assertion or one-time code handled in this file was logged', async () => {
    await ledger.check(expect);
  });
}
