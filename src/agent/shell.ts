/**
 * The agent's commands (`tools`, `call`, `scopes`, `logout`, `help`, `quit`) and the interactive
 * shell that reads them line by line (node:readline; without a terminal it simply reads stdin until
 * it ends, so `echo tools | gatehouse agent URL` works).
 *
 * A failing command prints what went wrong and what to do next, and the shell carries on.
 */
import { createInterface } from 'node:readline';
import type { Tool } from '@modelcontextprotocol/client';
import { AgentError } from './errors.ts';
import { type Agent, resultText } from './index.ts';

export interface CommandOutput {
  /** Results: what a script would capture. */
  out(text: string): void;
  /** Messages, errors and hints. */
  err(text: string): void;
}

export const SHELL_HELP = `Commands:
  tools                    list the server's tools
  call <tool> [json-args]  call a tool, e.g. call get_stock {"symbol":"SAP"}
  scopes                   show the permissions (scopes) the agent holds, and who it is
  logout                   revoke and forget this server's tokens
  help                     show this text
  quit                     leave (also: exit, Ctrl-D)`;

export function formatTools(tools: Tool[]): string {
  if (tools.length === 0) return '(the server offers no tools)';
  const width = Math.max(...tools.map((tool) => tool.name.length));
  return tools
    .map((tool) => {
      const readOnly = tool.annotations?.readOnlyHint === true ? '' : '  [changes things]';
      return `${tool.name.padEnd(width)}  ${tool.description ?? tool.title ?? ''}${readOnly}`;
    })
    .join('\n');
}

/** Parses a tool's JSON arguments: an object, or nothing for `{}`. */
export function parseToolArguments(text: string | undefined): Record<string, unknown> {
  if (!text?.trim()) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AgentError(
      'usage',
      `the tool arguments are not valid JSON: ${text}`,
      `Pass a JSON object, e.g. '{"symbol":"SAP"}'.`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new AgentError(
      'usage',
      'the tool arguments must be a JSON object',
      `Pass a JSON object, e.g. '{"symbol":"SAP"}'.`,
    );
  }
  return parsed as Record<string, unknown>;
}

export function describeError(error: unknown): string {
  if (error instanceof AgentError) return error.hint ? `${error.message}\n  ${error.hint}` : error.message;
  return error instanceof Error ? error.message : String(error);
}

/**
 * Runs one command. Returns false when it failed (an error, or a tool result with `isError`), and
 * 'quit' for quit.
 */
export async function runCommand(
  agent: Agent,
  command: string,
  rest: string,
  output: CommandOutput,
): Promise<boolean | 'quit'> {
  switch (command) {
    case '':
      return true;
    case 'help':
    case '?':
      output.out(SHELL_HELP);
      return true;
    case 'quit':
    case 'exit':
      return 'quit';
    case 'tools':
      output.out(formatTools(await agent.listTools()));
      return true;
    case 'call': {
      const match = /^(\S+)\s*(.*)$/s.exec(rest.trim());
      if (!match) throw new AgentError('usage', 'call needs a tool name', 'For example: call list_stocks');
      const name = match[1]!;
      const result = await agent.callTool(name, parseToolArguments(match[2]));
      if (result.isError) {
        output.err(`the tool ${name} failed: ${resultText(result)}`);
        return false;
      }
      output.out(resultText(result));
      return true;
    }
    case 'scopes': {
      await agent.connect();
      const identity = agent.identity();
      const scopes = agent.scopes();
      output.out(scopes.length > 0 ? scopes.join('\n') : '(no scopes held)');
      if (identity) {
        output.err(
          `client ${identity.clientId} (${identity.clientKind}) at ${identity.issuer}, for ${identity.resource}`,
        );
      }
      return true;
    }
    case 'logout': {
      const problems = await agent.logout();
      for (const problem of problems) output.err(problem);
      output.out(
        problems.length === 0
          ? 'Signed out: the tokens were revoked and forgotten.'
          : 'The tokens were forgotten.',
      );
      return problems.length === 0;
    }
    default:
      throw new AgentError('usage', `unknown command "${command}"`, 'Type help for the commands.');
  }
}

/** The interactive shell: reads commands until quit or the end of input. */
export async function runShell(
  agent: Agent,
  io: { input: NodeJS.ReadableStream; prompt: NodeJS.WritableStream | undefined; output: CommandOutput },
): Promise<void> {
  const lines = createInterface({
    input: io.input,
    ...(io.prompt ? { output: io.prompt, terminal: true } : { terminal: false }),
  });
  const prompt = () => {
    if (io.prompt) {
      lines.setPrompt('gatehouse> ');
      lines.prompt();
    }
  };
  io.output.err('Type help for the commands, quit to leave.');
  prompt();
  for await (const line of lines) {
    const trimmed = line.trim();
    const space = trimmed.search(/\s/);
    const command = space < 0 ? trimmed : trimmed.slice(0, space);
    const rest = space < 0 ? '' : trimmed.slice(space + 1);
    try {
      if ((await runCommand(agent, command.toLowerCase(), rest, io.output)) === 'quit') break;
    } catch (error) {
      io.output.err(describeError(error));
    }
    prompt();
  }
  lines.close();
}
