/**
 * The audit trail of tool calls: one structured line per call, whatever its outcome — who (subject
 * and client), which tool and API, the upstream status and how long it took. Never a token: the
 * fields are listed here, so nothing else can slip in.
 */
import type { Logger } from '../shared/logging.ts';

export const TOOL_CALL_EVENT = 'mcp.tool_call';

export interface ToolCallRecord {
  outcome: 'success' | 'failure' | 'denied';
  /** The agent request's id: the same in the gateway's, the authorization server's and the API's lines. */
  request_id?: string | undefined;
  sub: string | undefined;
  client_id: string | undefined;
  tool: string;
  api: string;
  /** The API's audience, as the authorization server's trail names APIs. */
  audience?: string | undefined;
  /** The grant the agent's token rests on: the trail joins the call to the user's consent by it. */
  grant_id?: string | undefined;
  /** The API's HTTP status; absent when it was never called or never answered. */
  upstream_status?: number | undefined;
  duration_ms: number;
  /** Why a call did not succeed, in a few words (`insufficient_scope`, `token_exchange:invalid_grant`, ...). */
  reason?: string | undefined;
  /** The user's approval of this very call (tools with `approval: required`): asked for, or used. */
  approval_id?: string | undefined;
}

export function auditToolCall(logger: Logger, record: ToolCallRecord): void {
  const { outcome, ...fields } = record;
  const defined = Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
  logger.audit(TOOL_CALL_EVENT, { outcome, ...defined });
}
