/**
 * The agent's side of an approval (MCP URL-mode elicitation): a tool call of a tool that needs the
 * person's approval sends `elicitation/create` with a URL. The agent shows it only when it is a
 * page of the authorization server it signed in with (an MCP server must not be able to send the
 * person anywhere else under the agent's name). It prints the link and never opens or fetches it
 * by itself (MCP 2025-11-25, elicitation: not without the user's explicit consent); a caller that
 * has the person's consent may open it (`open`). The person says when they are done: `accept`,
 * else `decline`, and the SDK retries the call (2026-07-28).
 */
import type { ApprovalRequest } from './index.ts';

/** Where Gatehouse's authorization server shows an approval (approvals/approval-pages.ts). */
const APPROVAL_PAGE = /^(\/[^?#]*)?\/account\/approvals\/ap_[A-Za-z0-9_-]{24}$/;

/** C0 and C1 control characters (terminal escapes among them) become spaces. */
const withoutControls = (text: string) =>
  [...text]
    .map((char) => {
      const code = char.codePointAt(0)!;
      return code < 0x20 || (code >= 0x7f && code < 0xa0) ? ' ' : char;
    })
    .join('');

export interface ElicitationParams {
  mode?: string;
  url?: string;
  message?: string;
}

export async function answerElicitation(
  params: ElicitationParams,
  how: {
    issuer: string | undefined;
    open?: ((url: string) => void | Promise<void>) | undefined;
    decide: ((request: ApprovalRequest) => Promise<boolean>) | undefined;
    tell: (message: string) => void;
  },
): Promise<{ action: 'accept' | 'decline' }> {
  // Form-mode elicitation (questions in the terminal) is not something this agent answers.
  if (params.mode !== 'url' || typeof params.url !== 'string') return { action: 'decline' };
  const url = URL.parse(params.url);
  const issuer = how.issuer ? URL.parse(how.issuer) : null;
  // The approval page itself, nothing else of the authorization server (not /authorize, whose
  // consent for another client would look like an approval; no query, no fragment).
  if (
    !url ||
    !issuer ||
    url.origin !== issuer.origin ||
    !APPROVAL_PAGE.test(url.pathname) ||
    url.search ||
    url.hash
  ) {
    how.tell(
      `A tool call asked to open ${params.url}, which is not a page of the authorization server: not opened.`,
    );
    return { action: 'decline' };
  }
  // The message is the MCP server's text, printed at a terminal: no control characters.
  const message = withoutControls(params.message ?? 'A tool call needs your approval.').slice(0, 300);
  how.tell(`Approval needed: ${message}\n  Open ${url.href} to approve or deny it.`);
  await how.open?.(url.href);
  if (!how.decide) return { action: 'decline' };
  return { action: (await how.decide({ url: url.href, message })) ? 'accept' : 'decline' };
}
