/**
 * Outgoing mail: SMTP through nodemailer when configured, otherwise the development inbox
 * (dev-inbox.ts: in memory, or in the shared PostgreSQL database with several instances).
 *
 * The development inbox exists so that Gatehouse can be tried without a mail server. It holds sign-in
 * codes in clear, so it is never created when SMTP is configured: there is no way to have both, and
 * hence no way to leave it reachable by mistake in a deployment that sends real mail.
 */

import { createTransport } from 'nodemailer';
import type { Logger } from '../../shared/logging.ts';
import { createMemoryDevInbox, type DevInbox } from './dev-inbox.ts';

export type { DevInbox, DevInboxMessage } from './dev-inbox.ts';

export interface SmtpConfig {
  host: string;
  port: number;
  /** true: TLS from the first byte (usually port 465); false: plain, upgraded by STARTTLS when offered. */
  secure: boolean;
  user?: string;
  password?: string;
  /** The From header, e.g. "Gatehouse <login@example.com>". */
  from: string;
}

export interface MailerConfig {
  smtp?: SmtpConfig;
  /** How many messages the development inbox keeps (oldest dropped first); default 50. */
  devInboxMaxMessages?: number;
  /**
   * Where the development inbox keeps its messages (the store's: store/store.ts); default in
   * memory, bounded by devInboxMaxMessages. Never used when SMTP is configured.
   */
  devInbox?: DevInbox;
}

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html?: string;
}

export interface Mailer {
  /** Resolves once the SMTP server accepted the message (or the inbox stored it); rejects otherwise. */
  send(message: MailMessage): Promise<void>;
  /** The development inbox; undefined whenever SMTP is configured. */
  devInbox: DevInbox | undefined;
  /**
   * For readiness: whether mail can go out. With SMTP, a connection, greeting and login (nodemailer's
   * `verify`), remembered for MAIL_CHECK_INTERVAL_MS so a probe asked often opens few connections.
   */
  ready(): Promise<{ ok: boolean; via: 'smtp' | 'development inbox'; error?: string }>;
}

/** How long the outcome of an SMTP check is reused by readiness probes. */
export const MAIL_CHECK_INTERVAL_MS = 30_000;

export function createMailer(config: MailerConfig, logger: Logger): Mailer {
  const smtp = config.smtp;
  if (smtp) {
    const transport = createTransport({
      host: smtp.host,
      port: smtp.port,
      secure: smtp.secure,
      auth: smtp.user !== undefined ? { user: smtp.user, pass: smtp.password ?? '' } : undefined,
      // nodemailer's defaults (2 minutes to connect, 10 minutes of socket silence) would leave a login
      // request hanging far longer than anyone waits for a code; fail fast so the error can be shown.
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
    });
    let checked: { at: number; outcome: Promise<{ ok: boolean; error?: string }> } | undefined;
    const check = async (): Promise<{ ok: boolean; error?: string }> => {
      try {
        await transport.verify();
        return { ok: true };
      } catch (error) {
        // The failure class only (as for delivery failures below): replies can quote addresses.
        const code = (error as { code?: unknown }).code;
        return { ok: false, error: typeof code === 'string' ? code : 'unreachable' };
      }
    };
    return {
      devInbox: undefined,
      async ready() {
        if (checked === undefined || performance.now() - checked.at > MAIL_CHECK_INTERVAL_MS)
          checked = { at: performance.now(), outcome: check() };
        return { via: 'smtp', ...(await checked.outcome) };
      },
      async send(message) {
        try {
          await transport.sendMail({
            from: smtp.from,
            to: message.to,
            subject: message.subject,
            text: message.text,
            ...(message.html !== undefined ? { html: message.html } : {}),
          });
        } catch (error) {
          // Only the failure class is logged: server replies can quote the recipient, and the message
          // body holds a sign-in code.
          const detail = error as { code?: unknown; responseCode?: unknown };
          logger.error('mail delivery failed', {
            smtpError: typeof detail.code === 'string' ? detail.code : undefined,
            responseCode: typeof detail.responseCode === 'number' ? detail.responseCode : undefined,
          });
          throw error;
        }
      },
    };
  }

  const max = config.devInboxMaxMessages ?? 50;
  if (!Number.isInteger(max) || max < 1)
    throw new Error('mailer: devInboxMaxMessages must be a positive integer');
  logger.warn(
    'no SMTP server configured: mail goes to the development inbox, which shows sign-in codes ' +
      'to whoever can read it; development only, configure SMTP for any real use',
  );
  const inbox = config.devInbox ?? createMemoryDevInbox({ maxMessages: max });
  return {
    devInbox: inbox,
    ready: async () => ({ ok: true, via: 'development inbox' }),
    async send(message) {
      await inbox.add({ to: message.to, subject: message.subject, text: message.text });
      logger.debug('message kept in the development inbox');
    },
  };
}

/** Subject and text of the sign-in code mail. The code stands alone in the text, easy to read and copy. */
export function loginCodeMessage(
  code: string,
  issuerName: string,
  minutes: number,
): { subject: string; text: string } {
  // The name comes from configuration; a line break in it would end up in a header.
  const name = issuerName.replace(/[\r\n]+/g, ' ').trim();
  const duration = minutes === 1 ? '1 minute' : `${minutes} minutes`;
  return {
    subject: `Your ${name} sign-in code`,
    text:
      `Your sign-in code is ${code}. It expires in ${duration}. ` +
      'If you did not ask for it, ignore this message.\n\n' +
      // Phishing pages ask people to read the code out; saying plainly that nobody legitimate will helps.
      `Do not share this code with anyone: ${name} will never ask you for it.\n`,
  };
}

/** Subject and text of the mail an administrator sends when adding a user ("invite"). */
export function invitationMessage(
  email: string,
  issuerName: string,
  issuer: string,
): { subject: string; text: string } {
  const name = issuerName.replace(/[\r\n]+/g, ' ').trim();
  return {
    subject: `You can now sign in to ${name}`,
    text:
      `An administrator of ${name} has allowed ${email} to sign in, so that the AI agents you use can ` +
      'reach its services for you. Nothing to do now: when an agent asks you to sign in, enter this ' +
      'address and the one-time code you will be sent.\n\n' +
      `You can see and revoke the agents you allowed at ${issuer}/account\n`,
  };
}
