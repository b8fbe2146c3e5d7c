/**
 * Development only: the inbox that shows the emails Gatehouse would have sent (sign-in codes), so a
 * developer can sign in without a mail server. Always carries the development banner.
 */

import { html, layout } from './html.ts';

export interface DevInboxMessage {
  to: string;
  subject: string;
  /** The plain-text body, shown as it is (escaped) in a <pre>. */
  text: string;
  time: Date | string | number;
}

function isoTime(time: Date | string | number): string {
  const date = time instanceof Date ? time : new Date(time);
  return Number.isNaN(date.getTime()) ? String(time) : date.toISOString();
}

/** Lists `messages` in the order given: the caller passes them newest first. */
export function devInboxPage(messages: DevInboxMessage[]): string {
  const list =
    messages.length === 0
      ? html`<p class="muted">No messages yet. Emails that Gatehouse would send appear here.</p>`
      : messages.map((message) => {
          const time = isoTime(message.time);
          return html`<article class="message">
<h2>${message.subject}</h2>
<dl>
<dt>To</dt><dd>${message.to}</dd>
<dt>Time</dt><dd><time datetime="${time}">${time}</time></dd>
</dl>
<pre>${message.text}</pre>
</article>`;
        });
  const count = messages.length === 1 ? '1 message' : `${messages.length} messages`;
  const body = html`<h1>Development inbox</h1>
<p class="notice dev">Development only: messages that would have been emailed are shown here instead of being sent.</p>
<p class="muted">${count}, newest first. Reload the page to see new ones.</p>
${list}`;
  return layout({ title: 'Development inbox', body, devBanner: true });
}
