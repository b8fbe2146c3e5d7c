import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import Koa from 'koa';
import type Provider from 'oidc-provider';
import { createLogger } from '../../shared/logging.ts';
import { openDatabase } from '../store/sqlite-store.ts';
import { announceRevocations } from './announce.ts';
import { createSqliteRevocationEventLog, type RevocationEventLog } from './event-log.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-announce-'));
const db = openDatabase(dir);
after(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a revocation that cannot be kept cuts every listener off, so that their caches fail safe', {
  timeout: 10_000,
}, async () => {
  const real = createSqliteRevocationEventLog(db);
  let broken = false;
  const log: RevocationEventLog = Object.create(real, {
    append: {
      value: async (event: Parameters<RevocationEventLog['append']>[0]) => {
        if (broken) throw new Error('database is locked');
        return real.append(event);
      },
    },
  });
  const app = new Koa();
  const provider = { use: (mw: Koa.Middleware) => app.use(mw), on: () => {} } as unknown as Provider;
  const lines: string[] = [];
  const secret = 'a-listener-secret-of-sufficient-length';
  const { announce } = announceRevocations(
    provider,
    log,
    new Map([['gatehouse-gateway', secret]]),
    createLogger('test', { write: (line) => lines.push(line) }),
  );
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const response = await fetch(`http://127.0.0.1:${port}/events/revocations`, {
      headers: { authorization: `Basic ${Buffer.from(`gatehouse-gateway:${secret}`).toString('base64')}` },
    });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    let text = '';
    while (!text.includes('event: ready')) text += new TextDecoder().decode((await reader.read()).value);

    announce({ type: 'grant', grant_id: 'kept', at: 1 });
    while (!text.includes('"kept"')) text += new TextDecoder().decode((await reader.read()).value);

    broken = true;
    announce({ type: 'grant', grant_id: 'lost', at: 2 });
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
    }
    assert.ok(lines.some((line) => line.includes('revocation listeners cut off')));
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});
