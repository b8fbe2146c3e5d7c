/**
 * The operation a person approves (issue 13, "approval of the operation itself"), as the three
 * parts that handle it agree on it: the MCP server asks for approval of a tool call, the
 * authorization server records the approval and binds the exchanged token to it, and the API checks
 * that the operation it receives is the one approved.
 *
 * The binding is RFC 9396 `authorization_details` of type `gatehouse_tool_call` in the exchanged
 * token: the tool, a digest of its arguments and the approval's id. The digest is SHA-256 over the
 * arguments as JSON with object keys sorted (RFC 8785's ordering; tool arguments are JSON values),
 * base64url: any change to any argument is another operation.
 */
import { createHash } from 'node:crypto';

export const TOOL_CALL_DETAILS_TYPE = 'gatehouse_tool_call';

/** JSON with object keys in code-unit order at every level (RFC 8785 §3.2.3), no whitespace. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export const argumentsDigest = (args: unknown) =>
  createHash('sha256')
    .update(canonicalJson(args ?? {}))
    .digest('base64url');

/** One `authorization_details` entry for an approved tool call (RFC 9396 §2). */
export interface ToolCallDetails {
  type: typeof TOOL_CALL_DETAILS_TYPE;
  tool: string;
  arguments_digest: string;
  approval_id?: string;
  /** Who approved (their subject) and when (seconds since the epoch), in the issued token. */
  approved_by?: string;
  approved_at?: number;
  /** The operation's amount, where the tool has one (`mcpServer.tools[].amountArgument`). */
  amount?: { argument: string; value: number };
}

/** The tool-call entry of an `authorization_details` value (a JSON string or the parsed array). */
export function toolCallDetailsOf(value: unknown): ToolCallDetails | undefined {
  let parsed = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch {
      return undefined;
    }
  }
  if (!Array.isArray(parsed) || parsed.length !== 1) return undefined;
  const entry = parsed[0] as Record<string, unknown>;
  if (
    entry?.type !== TOOL_CALL_DETAILS_TYPE ||
    typeof entry.tool !== 'string' ||
    typeof entry.arguments_digest !== 'string' ||
    !/^[A-Za-z0-9_-]{43}$/.test(entry.arguments_digest)
  )
    return undefined;
  return entry as unknown as ToolCallDetails;
}
