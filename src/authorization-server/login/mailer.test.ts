import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { createLogger } from '../../shared/logging.ts';
import { createMailer, loginCodeMessage } from './mailer.ts';

function collectingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger('mailer-test', {
    level: 'debug',
    write: (line) => lines.push(JSON.parse(line)),
  });
  return { logger, lines };
}

interface Received {
  mailFrom: string;
  rcptTo: string[];
  data: string;
}

/** Just enough of an SMTP server (RFC 5321) for nodemailer to deliver one message over plain TCP. */
async function startSmtpServer(): Promise<{ server: Server; port: number; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((socket: Socket) => {
    socket.setEncoding('utf8');
    let buffer = '';
    let inData = false;
    let current: Received = { mailFrom: '', rcptTo: [], data: '' };
    const reply = (line: string) => socket.write(`${line}\r\n`);
    reply('220 localhost test SMTP');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (;;) {
        if (inData) {
          const end = buffer.indexOf('\r\n.\r\n');
          if (end === -1) return;
          current.data = buffer.slice(0, end);
          buffer = buffer.slice(end + 5);
          inData = false;
          received.push(current);
          current = { mailFrom: '', rcptTo: [], data: '' };
          reply('250 OK queued');
          continue;
        }
        const eol = buffer.indexOf('\r\n');
        if (eol === -1) return;
        const line = buffer.slice(0, eol);
        buffer = buffer.slice(eol + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') reply('250 localhost');
        else if (verb === 'MAIL') {
          current.mailFrom = line;
          reply('250 OK');
        } else if (verb === 'RCPT') {
          current.rcptTo.push(line);
          reply('250 OK');
        } else if (verb === 'DATA') {
          inData = true;
          reply('354 End data with <CR><LF>.<CR><LF>');
        } else if (verb === 'QUIT') {
          reply('221 Bye');
          socket.end();
          return;
        } else if (verb === 'RSET' || verb === 'NOOP') reply('250 OK');
        else reply('502 Command not implemented');
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, received };
}

describe('loginCodeMessage', () => {
  it('puts the code and the expiry in the text, not the subject', () => {
    const message = loginCodeMessage('123456', 'Gatehouse', 5);
    assert.equal(message.subject, 'Your Gatehouse sign-in code');
    assert.ok(
      message.text.includes(
        'Your sign-in code is 123456. It expires in 5 minutes. If you did not ask for it, ignore this message.',
      ),
    );
    assert.ok(!message.subject.includes('123456'));
    assert.ok(loginCodeMessage('123456', 'Gatehouse', 1).text.includes('expires in 1 minute.'));
    assert.equal(
      loginCodeMessage('1', 'Evil\r\nBcc: x@example.com', 5).subject,
      'Your Evil Bcc: x@example.com sign-in code',
    );
  });
});

describe('development inbox', () => {
  it('is used without SMTP, warns once, lists newest first and stays bounded', async () => {
    const { logger, lines } = collectingLogger();
    const mailer = createMailer({ devInboxMaxMessages: 3 }, logger);
    assert.ok(mailer.devInbox);
    const warnings = lines.filter((line) => line.level === 'warn');
    assert.equal(warnings.length, 1);
    assert.match(String(warnings[0]?.message), /development inbox.*development only/);

    for (let i = 1; i <= 5; i++) {
      await mailer.send({ to: `user${i}@example.com`, subject: `Message ${i}`, text: `Body ${i}` });
    }
    const listed = await mailer.devInbox.list();
    assert.deepEqual(
      listed.map((message) => message.subject),
      ['Message 5', 'Message 4', 'Message 3'],
    );
    const newest = listed[0];
    assert.ok(newest);
    assert.equal(newest.to, 'user5@example.com');
    assert.equal(newest.text, 'Body 5');
    assert.equal(new Date(newest.time).toISOString(), newest.time);
    assert.equal(new Set(listed.map((message) => message.id)).size, 3);
    assert.equal(
      lines.filter((line) => line.level === 'warn').length,
      1,
      'the warning is not repeated per message',
    );
    assert.ok(!JSON.stringify(lines).includes('user5@example.com'), 'recipients are not logged');

    // Listing hands out copies.
    newest.text = 'changed';
    assert.equal((await mailer.devInbox.list())[0]?.text, 'Body 5');
  });

  it('refuses a nonsensical bound', () => {
    assert.throws(
      () => createMailer({ devInboxMaxMessages: 0 }, collectingLogger().logger),
      /devInboxMaxMessages/,
    );
  });
});

describe('SMTP', () => {
  it('delivers through the configured server, with no development inbox', async (t) => {
    const { server, port, received } = await startSmtpServer();
    t.after(() => server.close());
    const { logger, lines } = collectingLogger();
    const mailer = createMailer(
      {
        smtp: { host: '127.0.0.1', port, secure: false, from: 'Gatehouse <login@gatehouse.example>' },
        devInboxMaxMessages: 10,
      },
      logger,
    );
    assert.equal(mailer.devInbox, undefined);
    assert.equal(lines.filter((line) => line.level === 'warn').length, 0);

    const message = loginCodeMessage('482913', 'Gatehouse', 5);
    await mailer.send({ to: 'alice@example.com', ...message });

    assert.equal(received.length, 1);
    const mail = received[0];
    assert.ok(mail);
    assert.deepEqual(mail.rcptTo, ['RCPT TO:<alice@example.com>']);
    assert.match(mail.mailFrom, /^MAIL FROM:<login@gatehouse\.example>/);
    // Undo quoted-printable soft line breaks before looking for the text.
    const body = mail.data.replace(/=\r\n/g, '');
    assert.ok(body.includes('482913'));
    assert.match(body, /^Subject: Your Gatehouse sign-in code\r$/m);
    assert.match(body, /^To: alice@example\.com\r$/m);
  });

  it('rejects, and logs without details, when the server refuses', async (t) => {
    const server = createServer((socket) => {
      socket.write('554 No service\r\n');
      socket.end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => server.close());
    const { logger, lines } = collectingLogger();
    const mailer = createMailer(
      {
        smtp: {
          host: '127.0.0.1',
          port: (server.address() as AddressInfo).port,
          secure: false,
          from: 'x@y.example',
        },
      },
      logger,
    );
    await assert.rejects(mailer.send({ to: 'alice@example.com', subject: 's', text: 'code 482913' }));
    const errors = lines.filter((line) => line.level === 'error');
    assert.equal(errors.length, 1);
    assert.ok(!JSON.stringify(lines).includes('alice@example.com'));
    assert.ok(!JSON.stringify(lines).includes('482913'));
  });
});
