/**
 * Who may ever use which MCP tool: the authorization server's tool policy.
 *
 * Each tool of `mcpServer.tools` needs its scopes (checked by the MCP server, with step-up) and may
 * have a rule on the user's claims (`allow`, e.g. `role: [trader]`); an administrator can put another
 * rule in its place in the console (directory `toolRules`), which wins until it is reset. From that:
 *
 * - the tools a user may use, sent to the MCP server in their tokens (`mcp_tools`,
 *   shared/tool-claims.ts), so `tools/list` shows only those and a call to another is unknown;
 * - the scopes a user may never hold: a scope is forbidden when some tool needs it and every tool
 *   needing it is closed to the user. Consent never grants one (interactions/routes.ts).
 *
 * A user is a set of claims (provider.ts `userClaims`); a rule admits them when every claim it names
 * has one of its values (a list claim: any element). Rules are about users only: a workload's
 * registered scopes are its policy.
 */
import type { ToolRule } from '../../shared/config/schema.ts';
import type { Directory, EntrySource } from '../admin/directory.ts';

export interface PolicyTool {
  name: string;
  title?: string | undefined;
  scopes: string[];
}

export interface ToolPolicyEntry extends PolicyTool {
  /** The rule in force; undefined: every user. */
  rule: ToolRule | undefined;
  /** The configuration's rule, shown beside an administrator's. */
  configuredRule: ToolRule | undefined;
  source: EntrySource;
  updatedBy?: string;
  updatedAt?: number;
}

export interface ToolPolicy {
  /** Every tool with the rule in force. */
  entries(): Promise<ToolPolicyEntry[]>;
  /** The names of the tools these claims admit, in catalogue order. */
  permittedTools(claims: Record<string, unknown>): Promise<string[]>;
  /** Of `scopes`, those these claims may never hold. */
  forbiddenScopes(claims: Record<string, unknown>, scopes: Iterable<string>): Promise<string[]>;
  /** Whether `tool` is a tool of the catalogue. */
  has(tool: string): boolean;
}

/** True when `claims` satisfy `rule`: every claim named has one of its values. */
export function admits(rule: ToolRule | undefined, claims: Record<string, unknown>): boolean {
  if (!rule) return true;
  return Object.entries(rule).every(([name, accepted]) => {
    const value = claims[name];
    const values = Array.isArray(value) ? value : [value];
    return values.some((candidate) => accepted.some((ok) => ok === candidate));
  });
}

/** The scopes of `tools` that no admitted tool needs. */
export function scopesClosedTo(
  tools: Array<{ scopes: string[]; admitted: boolean }>,
  scopes: Iterable<string>,
): string[] {
  const forbidden: string[] = [];
  for (const scope of scopes) {
    const needing = tools.filter((tool) => tool.scopes.includes(scope));
    if (needing.length > 0 && needing.every((tool) => !tool.admitted)) forbidden.push(scope);
  }
  return forbidden;
}

export function createToolPolicy(
  catalogue: Array<PolicyTool & { allow?: ToolRule | undefined }>,
  overrides: Pick<Directory['toolRules'], 'list'>,
): ToolPolicy {
  const names = new Set(catalogue.map((tool) => tool.name));

  async function entries(): Promise<ToolPolicyEntry[]> {
    const byTool = new Map((await overrides.list()).map((override) => [override.tool, override]));
    return catalogue.map((tool) => {
      const override = byTool.get(tool.name);
      const base = { name: tool.name, title: tool.title, scopes: tool.scopes, configuredRule: tool.allow };
      if (!override) return { ...base, rule: tool.allow, source: 'configuration' as const };
      return {
        ...base,
        rule: override.rule ?? undefined,
        source: 'administrator' as const,
        updatedBy: override.updatedBy,
        updatedAt: override.updatedAt,
      };
    });
  }

  const judged = async (claims: Record<string, unknown>) =>
    (await entries()).map((entry) => ({ ...entry, admitted: admits(entry.rule, claims) }));

  return {
    entries,
    has: (tool) => names.has(tool),
    permittedTools: async (claims) =>
      (await judged(claims)).filter((entry) => entry.admitted).map((entry) => entry.name),
    forbiddenScopes: async (claims, scopes) => scopesClosedTo(await judged(claims), scopes),
  };
}
