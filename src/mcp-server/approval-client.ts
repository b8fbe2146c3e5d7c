/**
 * Asks the authorization server for the user's approval of one tool call (its `POST /approvals`,
 * authorization-server/approvals/approval-requests.ts), with the MCP server's own client
 * credentials. The answer names the page where the user decides and what they decided so far.
 */
import { REQUEST_ID_HEADER } from '../shared/request-id.ts';

export interface ApprovalState {
  approvalId: string;
  status: 'pending' | 'approved' | 'denied' | 'used';
  url: string;
  /** Seconds since the epoch. */
  expiresAt: number;
  /** When an identical call ran lately, seconds since the epoch. */
  identicalCallRanAt?: number | undefined;
}

export class ApprovalRequestError extends Error {
  override name = 'ApprovalRequestError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export interface ApprovalClient {
  request(input: {
    subjectToken: string;
    tool: string;
    arguments: Record<string, unknown>;
    requestId?: string | undefined;
  }): Promise<ApprovalState>;
}

export function createApprovalClient(options: {
  endpoint: string;
  clientId: string;
  clientSecret: string;
  timeoutMs: number;
  fetch?: typeof fetch;
}): ApprovalClient {
  const doFetch = options.fetch ?? fetch;
  const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
  const authorization = `Basic ${Buffer.from(`${encode(options.clientId)}:${encode(options.clientSecret)}`).toString('base64')}`;
  return {
    async request(input) {
      let response: Response;
      try {
        response = await doFetch(options.endpoint, {
          method: 'POST',
          headers: {
            authorization,
            'content-type': 'application/json',
            accept: 'application/json',
            ...(input.requestId ? { [REQUEST_ID_HEADER]: input.requestId } : {}),
          },
          body: JSON.stringify({
            subject_token: input.subjectToken,
            tool: input.tool,
            arguments: input.arguments,
            ...(input.requestId ? { request_id: input.requestId } : {}),
          }),
          redirect: 'error',
          signal: AbortSignal.timeout(options.timeoutMs),
        });
      } catch {
        throw new ApprovalRequestError(
          'unreachable',
          'the authorization server could not be asked for an approval',
        );
      }
      const json = (await response.json().catch(() => ({}))) as Record<string, unknown>;
      if (!response.ok || typeof json.approval_id !== 'string' || typeof json.approval_url !== 'string') {
        const code = typeof json.error === 'string' ? json.error : 'server_error';
        throw new ApprovalRequestError(code, `the authorization server did not open an approval (${code})`);
      }
      return {
        approvalId: json.approval_id,
        status: json.status as ApprovalState['status'],
        url: json.approval_url,
        expiresAt: Number(json.expires_at),
        ...(typeof json.identical_call_ran_at === 'number'
          ? { identicalCallRanAt: json.identical_call_ran_at }
          : {}),
      };
    },
  };
}
