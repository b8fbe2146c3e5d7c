/**
 * Who may use which tool, for administrators: the tool policy (tools/tool-policy.ts) in the console
 * (`/admin/tools`) and the admin API (`/admin/api/tools`). An administrator's rule takes the place of
 * the configuration's `mcpServer.tools[].allow` until it is reset; it applies to the tokens issued
 * from then on (a user's tokens name their tools, for at most their lifetime) and to every consent.
 */
import { type ToolRule, toolRuleSchema } from '../../shared/config/schema.ts';
import type { Logger } from '../../shared/logging.ts';
import { csrfField, html } from '../interactions/views/html.ts';
import type { ToolPolicy, ToolPolicyEntry } from '../tools/tool-policy.ts';
import type { AdminApiExtension } from './admin-api.ts';
import { invalid, notFound } from './admin-error.ts';
import { type ConsoleExtension, parseClaimsText } from './console-routes.ts';
import type { Directory } from './directory.ts';
import { action, consolePage } from './views/console-pages.ts';

export interface ToolsAdminDependencies {
  policy: ToolPolicy;
  rules: Directory['toolRules'];
  logger: Logger;
}

/** `role=trader,desk groups=ops` → { role: ['trader', 'desk'], groups: ['ops'] }; "" → everyone. */
export function ruleFromText(text: string): ToolRule | null {
  if (text.trim() === '') return null;
  const parsed = Object.fromEntries(
    Object.entries(parseClaimsText(text)).map(([claim, value]) => [claim, [value].flat().map(String)]),
  );
  const checked = toolRuleSchema.safeParse(parsed);
  if (!checked.success) throw invalid('rule', checked.error.issues[0]?.message ?? 'is not a rule');
  return checked.data;
}

export const ruleText = (rule: ToolRule | undefined) =>
  rule
    ? Object.entries(rule)
        .map(([claim, values]) => `${claim}=${values.join(',')}`)
        .join(' ')
    : '';

export function toolsAdmin({ policy, rules, logger }: ToolsAdminDependencies) {
  const known = (tool: string) => {
    if (!policy.has(tool)) throw notFound(`there is no tool "${tool}"`);
    return tool;
  };
  const setRule = async (actor: string, tool: string, rule: ToolRule | null) => {
    await rules.put({ tool: known(tool), rule, updatedBy: actor });
    logger.audit('admin.tool_rule.set', {
      outcome: 'success',
      actor,
      tool,
      rule: ruleText(rule ?? undefined) || 'everyone',
    });
  };
  const reset = async (actor: string, tool: string) => {
    const removed = await rules.remove(known(tool));
    if (removed) logger.audit('admin.tool_rule.reset', { outcome: 'success', actor, tool });
    return removed;
  };
  const view = (entry: ToolPolicyEntry) => ({
    name: entry.name,
    scopes: entry.scopes,
    rule: entry.rule ?? null,
    configured_rule: entry.configuredRule ?? null,
    source: entry.source,
    ...(entry.updatedBy ? { updated_by: entry.updatedBy } : {}),
    ...(entry.updatedAt ? { updated_at: new Date(entry.updatedAt).toISOString() } : {}),
  });

  const api: AdminApiExtension[] = [
    {
      method: 'GET',
      path: /^\/tools$/,
      scope: 'admin.read',
      handle: async () => ({ tools: (await policy.entries()).map(view) }),
    },
    {
      method: 'POST',
      path: /^\/tools\/([^/]{1,200})\/rule$/,
      scope: 'admin',
      handle: async (_ctx, caller, match, body) => {
        const rule = body.rule === null ? null : toolRuleSchema.safeParse(body.rule);
        if (rule !== null && !rule.success)
          throw invalid('rule', 'must be null (every user) or an object of claim name → list of values');
        await setRule(caller.actor, match[1]!, rule === null ? null : rule.data);
        return view((await policy.entries()).find((entry) => entry.name === match[1])!);
      },
    },
    {
      method: 'POST',
      path: /^\/tools\/([^/]{1,200})\/reset$/,
      scope: 'admin',
      handle: async (_ctx, caller, match) => {
        await reset(caller.actor, match[1]!);
        return view((await policy.entries()).find((entry) => entry.name === match[1])!);
      },
    },
  ];

  const console: ConsoleExtension = {
    tab: 'tools',
    page: async (frame) => {
      const rows = (await policy.entries()).map(
        (entry) => html`<tr>
<td><code>${entry.name}</code>${entry.title && html`<br><span class="muted">${entry.title}</span>`}</td>
<td>${entry.scopes.map((scope) => html`<code>${scope}</code> `)}</td>
<td>${entry.rule ? html`<code>${ruleText(entry.rule)}</code>` : html`every user`}</td>
<td>${entry.source === 'administrator' ? html`${entry.updatedBy ?? 'an administrator'} (configuration: ${entry.configuredRule ? html`<code>${ruleText(entry.configuredRule)}</code>` : 'every user'})` : 'configuration'}</td>
<td><form method="post" action="/admin/tools/set" class="row">${csrfField(frame.csrf)}<input type="hidden" name="tool" value="${entry.name}">
<div class="field"><label for="rule-${entry.name}">Who may use it (name=value; empty: every user)</label>
<input type="text" id="rule-${entry.name}" name="rule" value="${ruleText(entry.rule)}" placeholder="role=trader"></div>
<button type="submit" class="small">Save</button></form>
${entry.source === 'administrator' && action(frame, 'tools/reset', { tool: entry.name }, 'Back to the configuration')}</td>
</tr>`,
      );
      return consolePage(
        frame,
        'tools',
        'Tools',
        html`<p class="hint">Who may ever use each tool of the MCP server, on the user's claims (a user whose claim is a list matches by any of its elements; values typed here are text, and match text claims only). A user the rule leaves out never sees the tool, cannot call it, and is never given a scope only such tools need. A change applies to every sign-in and consent from now on, and to tokens issued from now on: a token already issued keeps its list of tools until it expires (revoke a user's grants to end that at once).</p>
<div class="table-wrap"><table><thead><tr><th>Tool</th><th>Scopes</th><th>Who may use it</th><th>Set by</th><th>Change</th></tr></thead>
<tbody>${rows}</tbody></table></div>
<p class="hint">Workloads (client credentials) are not users: their registered scopes decide.</p>`,
      );
    },
    actions: {
      set: async (actor, form) => {
        const tool = form.get('tool') ?? '';
        const rule = ruleFromText(form.get('rule') ?? '');
        await setRule(actor, tool, rule);
        return rule ? `${tool} is now for users with ${ruleText(rule)}.` : `${tool} is now for every user.`;
      },
      reset: async (actor, form) => {
        const tool = form.get('tool') ?? '';
        await reset(actor, tool);
        return `${tool} follows the configuration again.`;
      },
    },
  };
  return { api, console };
}
