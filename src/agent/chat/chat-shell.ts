/**
 * The chat shell: reads the person's messages line by line (node:readline; without a terminal it
 * reads stdin until it ends), sends each to the conversation, and reads the answer to a
 * confirmation from the next line. `quit`, `exit` or the end of input leave.
 */
import { createInterface } from 'node:readline';
import type { Agent } from '../index.ts';
import { type CommandOutput, describeError } from '../shell.ts';
import { createConversation } from './conversation.ts';
import type { ChatModel } from './model.ts';

export const CHAT_HELP = 'Say what you want done; quit (or exit, Ctrl-D) leaves.';

/** Lines of the input, one at a time, for messages and for answers to confirmations alike. */
function lineReader(input: NodeJS.ReadableStream) {
  const lines: string[] = [];
  const waiting: Array<(line: string | undefined) => void> = [];
  let ended = false;
  const rl = createInterface({ input, terminal: false });
  rl.on('line', (line) => {
    const next = waiting.shift();
    if (next) next(line);
    else lines.push(line);
  });
  rl.on('close', () => {
    ended = true;
    for (const next of waiting.splice(0)) next(undefined);
  });
  return {
    next(): Promise<string | undefined> {
      if (lines.length > 0) return Promise.resolve(lines.shift());
      if (ended) return Promise.resolve(undefined);
      return new Promise((resolve) => waiting.push(resolve));
    },
    /** Forgets the lines read but not yet taken (typed ahead); how many. */
    drop(): number {
      return lines.splice(0).length;
    },
    close: () => rl.close(),
  };
}

export async function runChatShell(
  agent: Agent,
  model: ChatModel,
  options: {
    input: NodeJS.ReadableStream;
    prompt?: NodeJS.WritableStream | undefined;
    output: CommandOutput;
  },
): Promise<void> {
  const { output } = options;
  const lines = lineReader(options.input);
  const ask = (text: string) => options.prompt?.write(text);
  const conversation = createConversation(agent, model, {
    say: output.out,
    note: (text) => output.err(`· ${text}`),
    async confirm(question) {
      // At a terminal only an answer typed after the question counts: a line typed while the
      // model worked ("yes", say) must not approve a call its writer never saw. Piped input is a
      // script, read in order.
      const dropped = options.prompt ? lines.drop() : 0;
      if (dropped > 0) output.err(`· ${dropped} line${dropped === 1 ? '' : 's'} typed meanwhile dropped`);
      // Shown whether or not there is a terminal: the question is the point.
      output.err(question.trimEnd());
      const answer = await lines.next();
      return /^\s*(y|yes)\s*$/i.test(answer ?? '');
    },
  });
  // A tool call that needs the person's approval (URL elicitation): the page opens, and the call
  // goes on when the person says they approved (a line typed meanwhile does not count, as above).
  agent.onApproval(async () => {
    const dropped = options.prompt ? lines.drop() : 0;
    if (dropped > 0) output.err(`· ${dropped} line${dropped === 1 ? '' : 's'} typed meanwhile dropped`);
    output.err('Approve it on that page, then answer here. Approved? [y/N]');
    return /^\s*(y|yes)\s*$/i.test((await lines.next()) ?? '');
  });
  output.err(`Chatting with ${model.description}. ${CHAT_HELP}`);
  try {
    for (;;) {
      ask('you> ');
      const line = await lines.next();
      if (line === undefined) return;
      const text = line.trim();
      if (text === '') continue;
      if (text === 'quit' || text === 'exit') return;
      try {
        await conversation.send(text);
      } catch (error) {
        output.err(`gatehouse agent: ${describeError(error)}`);
      }
    }
  } finally {
    lines.close();
  }
}
