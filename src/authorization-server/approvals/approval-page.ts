/**
 * The page where a person approves one operation their agent wants to run: the tool, its
 * arguments in words, the agent with the same trust signals as the consent page, and how long the
 * approval lasts. Server-rendered, no script; the form carries a token bound to this approval and
 * the browser session (approval-pages.ts), and the page cannot be framed (pages-http.ts).
 */
import type { Branding } from '../interactions/views/branding.ts';
import { waitInWords } from '../interactions/views/duration.ts';
import { csrfField, html, layout, safeUrl } from '../interactions/views/html.ts';

export interface ApprovalPageOptions {
  action: string;
  csrfToken: string;
  email: string;
  tool: {
    name: string;
    title?: string | undefined;
    description: string;
    amountArgument?: string | undefined;
  };
  arguments: Record<string, unknown>;
  agent: { name: string; verified: boolean; kind: string };
  /** Seconds left to decide. */
  secondsLeft: number;
  /** When an identical call ran lately (milliseconds since the epoch): approving runs it again. */
  identicalCallRanAt?: number | undefined;
  devBanner?: boolean;
  branding: Branding;
}

/**
 * An argument's value as a person reads it, in full (what is approved is all of it; the request
 * that made the approval is at most 16 KiB): text as it is, anything else as JSON.
 */
function shown(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value, null, 1);
}

const KIND_TEXT: Record<string, string> = {
  'pre-registered': 'registered by the administrators of this sign-in service',
  cimd: 'described by a metadata document it publishes itself',
  dynamic: 'registered itself automatically',
};

export function approvalPage(options: ApprovalPageOptions): string {
  const { tool, agent, branding } = options;
  const badge = agent.verified
    ? html`<span class="badge verified">Verified</span>`
    : html`<span class="badge unverified">Unverified</span>`;
  const rows = Object.entries(options.arguments).map(
    ([name, value]) => html`<dt>${name}</dt><dd><pre class="value">${shown(value)}</pre></dd>`,
  );
  const body = html`<h1>Approve this operation?</h1>
<p><strong>${agent.name}</strong> ${badge} wants to run <strong>${tool.title ?? tool.name}</strong> (<code>${tool.name}</code>) for you, once, with exactly these values:</p>
${
  tool.amountArgument &&
  typeof options.arguments[tool.amountArgument] === 'number' &&
  html`<p class="amount">Amount: <strong>${String(options.arguments[tool.amountArgument])}</strong> (${tool.amountArgument})</p>`
}
${
  options.identicalCallRanAt &&
  html`<p class="notice unverified">The same operation, with exactly these values, already ran at ${new Date(
    options.identicalCallRanAt,
  )
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC')}. Approve only if you want it to run a second time.</p>`
}
<dl class="operation">${rows}</dl>
<p class="hint">${tool.description}</p>
${
  agent.verified
    ? html`<p class="notice verified">${branding.organizationName} has verified who publishes this application.</p>`
    : html`<p class="notice unverified">${branding.organizationName} could not verify who publishes this application (${KIND_TEXT[agent.kind] ?? agent.kind}). Approve only what you asked it to do.</p>`
}
<dl><dt>Signed in as</dt><dd>${options.email}</dd><dt>Valid for</dt><dd>${waitInWords(options.secondsLeft)}, for this one call</dd></dl>
<form method="post" action="${safeUrl(options.action)}">
${csrfField(options.csrfToken)}
<div class="actions">
<button name="decision" value="approve">Approve</button>
<button name="decision" value="deny">Deny</button>
</div>
</form>
<p class="hint">Nothing runs until you approve. Changed values would need a new approval.</p>`;
  return layout({ title: 'Approve this operation?', body, devBanner: options.devBanner, branding });
}
