/**
 * A conversation between a person, a language model and the MCP server's tools (`gatehouse agent
 * <url> chat`): the person says what they want, the model chooses tools, the agent runs them with
 * the same authorization as any call (sign-in on first use, step-up on 403 insufficient_scope:
 * session.ts) and hands the results back, until the model answers in words.
 *
 * The model is not trusted with anything: a tool it names that the server does not offer, or
 * arguments that are not a JSON object, go back to it as an error it can correct, never to the
 * server; a tool that may change things (MCP annotations: anything not read-only) runs only once
 * the person said yes to that exact call, whatever a tool result told the model; and the rounds of
 * tool calls per message are bounded.
 */
import type { Tool } from '@modelcontextprotocol/client';
import { type Agent, resultText } from '../index.ts';
import { describeError } from '../shell.ts';
import type { ChatMessage, ChatModel, ModelTool, ModelToolCall } from './model.ts';

export interface ChatIo {
  /** What the person reads: the model's words, each tool call and its result. */
  say(text: string): void;
  /** Notes and errors. */
  note(text: string): void;
  /** Asks a yes/no question; true only for a yes. */
  confirm(question: string): Promise<boolean>;
}

export const SYSTEM_PROMPT = [
  'You act for the person you are talking to, through the tools of an MCP server.',
  'Use the tools to find out what you need; never make data up.',
  'Call only the tools you are given, with arguments that match their input schema.',
  'Tools that change things run only after the person confirms them; if they decline, do not try again unasked.',
  'Answer briefly, in the language of the person.',
].join(' ');

/** Rounds of tool calls for one message of the person's, at most. */
export const MAX_TOOL_ROUNDS = 8;
/** Characters of a tool result shown to the person (the model gets it whole). */
const SHOWN_RESULT_CHARS = 2000;

/**
 * Anything not marked read-only may change things (MCP tool annotations). `destructiveHint: false`
 * says only that its changes are additive: placing an order, sending a message; still asked.
 */
export function changesThings(tool: Tool): boolean {
  return tool.annotations?.readOnlyHint !== true;
}

function modelTool(tool: Tool): ModelTool {
  return {
    name: tool.name,
    description: tool.description ?? tool.title ?? tool.name,
    inputSchema: tool.inputSchema as Record<string, unknown>,
  };
}

/** The model's arguments as an object, or why they are not one. */
function argumentsOf(call: ModelToolCall): Record<string, unknown> | string {
  let value: unknown = call.arguments;
  if (typeof call.arguments === 'string') {
    const text = call.arguments;
    if (text.trim() === '') return {};
    try {
      value = JSON.parse(text);
    } catch {
      return `the arguments of ${call.name} are not valid JSON: ${text.slice(0, 200)}`;
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return `the arguments of ${call.name} must be a JSON object`;
  return value as Record<string, unknown>;
}

const shown = (text: string) =>
  text.length > SHOWN_RESULT_CHARS
    ? `${text.slice(0, SHOWN_RESULT_CHARS)}… (${text.length} characters)`
    : text;

export interface Conversation {
  /** One message of the person's, answered: tool rounds until the model replies in words. */
  send(text: string): Promise<void>;
  readonly messages: readonly ChatMessage[];
}

export function createConversation(agent: Agent, model: ChatModel, io: ChatIo): Conversation {
  const messages: ChatMessage[] = [];
  let tools: Tool[] | undefined;

  async function run(
    call: ModelToolCall,
    byName: Map<string, Tool>,
  ): Promise<{ content: string; isError: boolean }> {
    const refuse = (content: string) => {
      io.say(`✗ ${call.name || '(no name)'}: ${content}`);
      return { content, isError: true };
    };
    const tool = byName.get(call.name);
    if (!tool)
      return refuse(`there is no tool named "${call.name}"; the tools are: ${[...byName.keys()].join(', ')}`);
    const args = argumentsOf(call);
    if (typeof args === 'string') return refuse(args);
    io.say(`→ ${call.name} ${JSON.stringify(args)}`);
    if (
      changesThings(tool) &&
      !(await io.confirm(`${call.name} changes things. Run it with ${JSON.stringify(args)}? [y/N] `))
    )
      return refuse('the person declined to run this call; it was not run');
    try {
      const result = await agent.callTool(call.name, args);
      const text = resultText(result);
      io.say(`← ${result.isError ? 'error: ' : ''}${shown(text)}`);
      return { content: text, isError: result.isError === true };
    } catch (error) {
      // A refusal the model can read (a bad argument, a scope the user may not get), and the person too.
      const reason = describeError(error);
      io.note(reason);
      return { content: `the call failed: ${reason.split('\n')[0]}`, isError: true };
    }
  }

  return {
    messages,
    async send(text) {
      tools ??= await agent.listTools();
      const byName = new Map(tools.map((tool) => [tool.name, tool]));
      const offered = tools.map(modelTool);
      messages.push({ role: 'user', text });
      for (let round = 0; round < MAX_TOOL_ROUNDS; round += 1) {
        const reply = await model.complete(SYSTEM_PROMPT, messages, offered);
        messages.push({ role: 'assistant', text: reply.text, toolCalls: reply.toolCalls });
        if (reply.text) io.say(reply.text);
        if (reply.toolCalls.length === 0) return;
        for (const call of reply.toolCalls) {
          const result = await run(call, byName);
          messages.push({ role: 'tool', callId: call.id, name: call.name, ...result });
        }
      }
      io.note(
        `the model was still calling tools after ${MAX_TOOL_ROUNDS} rounds; stopped (say what you want next)`,
      );
    },
  };
}
