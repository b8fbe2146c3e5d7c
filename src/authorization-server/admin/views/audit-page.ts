/**
 * The console's Audit tab: a search form over the audit trail, one page of records (newest first),
 * the next page, and the JSON-lines export of the same search.
 */

import type { AuditRecord } from '../../audit/audit-trail.ts';
import { html } from '../../interactions/views/html.ts';
import { type ConsoleFrame, consolePage } from './console-pages.ts';

const FIELDS: Array<[string, string]> = [
  ['user', 'User (email)'],
  ['client', 'Client id'],
  ['tool', 'Tool'],
  ['api', 'API (name or audience)'],
  ['event', 'Event'],
  ['outcome', 'Outcome (success, failure, denied)'],
  ['request_id', 'Request id'],
  ['grant_id', 'Grant id'],
  ['since', 'Since (ISO date-time)'],
  ['until', 'Until (ISO date-time)'],
];

const queryString = (filters: Record<string, string>, extra: Record<string, string> = {}) =>
  new URLSearchParams(
    Object.entries({ ...filters, ...extra }).filter(([, value]) => value !== ''),
  ).toString();

export function auditPage(
  frame: ConsoleFrame,
  filters: Record<string, string>,
  records: Array<AuditRecord & { email?: string }>,
  nextCursor: string | undefined,
  error?: string,
): string {
  const rows = records.map(
    (
      record,
    ) => html`<tr><td>${record.at.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</td><td><code>${record.event}</code></td><td>${record.outcome}</td>
<td>${record.email ?? record.sub ?? ''}</td><td><code>${record.client_id ?? ''}</code></td><td>${record.tool ?? ''}</td>
<td><code>${record.audience ?? ''}</code></td><td><code>${record.scope ?? ''}</code></td>
<td>${record.request_id ? html`<a href="/admin/audit?${queryString({ request_id: record.request_id })}"><code>${record.request_id}</code></a>` : ''}</td>
<td>${record.grant_id ? html`<a href="/admin/audit?${queryString({ grant_id: record.grant_id })}"><code>${record.grant_id.slice(0, 10)}…</code></a>` : ''}</td>
<td><code>${JSON.stringify(record.fields)}</code></td></tr>`,
  );
  const body = html`${error && html`<p class="error" role="alert">${error}</p>`}
<form method="get" action="/admin/audit"><div class="row">${FIELDS.map(
    ([name, label]) =>
      html`<div class="field"><label for="audit-${name}">${label}</label><input type="text" id="audit-${name}" name="${name}" value="${filters[name] ?? ''}"></div>`,
  )}</div><div class="actions"><button type="submit">Search</button></div></form>
<p><a href="/admin/audit/export?${queryString(filters)}">Export this search as JSON lines</a>. A request id shows one agent request through every hop; a grant id shows the consent and every tool call resting on it.</p>
<div class="table-wrap"><table><thead><tr><th>Time (UTC)</th><th>Event</th><th>Outcome</th><th>User</th><th>Client</th><th>Tool</th><th>API</th><th>Scope</th><th>Request</th><th>Grant</th><th>Details</th></tr></thead>
<tbody>${rows}</tbody></table></div>
${records.length === 0 && html`<p class="muted">No record matches.</p>`}
${nextCursor && html`<p><a href="/admin/audit?${queryString(filters, { cursor: nextCursor })}">Older records</a></p>`}`;
  return consolePage(frame, 'audit', 'Audit trail', body);
}
