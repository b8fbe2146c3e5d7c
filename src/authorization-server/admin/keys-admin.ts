/**
 * The signing keys for administrators (keys/key-manager.ts): `GET /admin/api/keys`,
 * `POST /admin/api/keys/rotate`, and the console's Keys tab, for both rings (access tokens, ID
 * tokens), which one rotation rotates together. A rotation asked for before the next keys have been
 * published long enough (the overlap rule) is refused with 409 and when to retry.
 */
import { html } from '../interactions/views/html.ts';
import type { KeyAdministration, KeyInfo } from '../keys/key-manager.ts';
import { KeyRotationTooSoonError } from '../keys/key-ring.ts';
import type { AdminApiExtension } from './admin-api.ts';
import { AdminError } from './admin-error.ts';
import type { ConsoleExtension } from './console-routes.ts';
import { action, consolePage } from './views/console-pages.ts';

const when = (iso: string | undefined) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—');

async function rotate(keys: KeyAdministration, actor: string) {
  try {
    return await keys.rotate(actor);
  } catch (error) {
    if (error instanceof KeyRotationTooSoonError) {
      const retryAt = new Date(error.retryAt * 1000).toISOString();
      throw new AdminError(
        409,
        'too_soon',
        `the next key is not published long enough yet; rotate after ${retryAt}`,
      );
    }
    throw error;
  }
}

export function keysAdmin(keys: KeyAdministration) {
  const api: AdminApiExtension[] = [
    { method: 'GET', path: /^\/keys$/, scope: 'admin.read', handle: async () => ({ keys: keys.list() }) },
    {
      method: 'POST',
      path: /^\/keys\/rotate$/,
      scope: 'admin',
      handle: async (_ctx, caller) => rotate(keys, caller.actor),
    },
  ];
  const row = (key: KeyInfo) =>
    html`<tr><td><code>${key.kid}</code></td><td>${key.alg}</td><td>${key.use === 'access_token' ? 'access tokens' : 'ID tokens'}</td>
<td><strong>${key.state}</strong></td>
<td>${when(key.created)}</td><td>${when(key.activated)}</td><td>${when(key.retireAt ?? key.promotableFrom)}</td></tr>`;
  const console: ConsoleExtension = {
    tab: 'keys',
    page: (frame) =>
      consolePage(
        frame,
        'keys',
        'Signing keys',
        html`<p class="hint">Two rings of keys: one signs access tokens, the other ID tokens. In each, the current key signs; the next one is already published, so that verifiers know it before it signs; a retired key stays published until every token it signed has expired. A rotation rotates both.</p>
<div class="table-wrap"><table><thead><tr><th>Key id</th><th>Algorithm</th><th>Signs</th><th>State</th><th>Created</th><th>Signing since</th><th>Leaves / may sign from</th></tr></thead>
<tbody>${keys.list().map(row)}</tbody></table></div>
<div class="actions">${action(frame, 'keys/rotate', {}, 'Rotate now')}</div>
<p class="hint">Rotating ends no session and refuses no token still valid.</p>`,
      ),
    actions: {
      rotate: async (actor) => {
        const result = await rotate(keys, actor);
        const id = result.idToken;
        return (
          `Key ${result.current} signs from now on (access tokens), and ${id.current} (ID tokens); ` +
          `${result.retired} stays published until ${result.retireAt}, ${id.retired} until ${id.retireAt}.`
        );
      },
    },
  };
  return { api, console };
}
