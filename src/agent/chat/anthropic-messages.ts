/**
 * Anthropic's Messages API (`POST <url>/v1/messages`, `anthropic-version: 2023-06-01`): the system
 * prompt is its own field, tools carry an `input_schema`, the model's tool calls are `tool_use`
 * blocks with their input as an object, and results go back in the next user message as
 * `tool_result` blocks naming their call.
 */
import {
  type ChatMessage,
  type ChatModel,
  keySource,
  ModelError,
  type ModelSettings,
  type ModelToolCall,
  postJson,
} from './model.ts';

export const ANTHROPIC_VERSION = '2023-06-01';
const MAX_TOKENS = 4096;

/** The conversation as alternating user and assistant messages of blocks. */
function wireMessages(messages: readonly ChatMessage[]): Array<Record<string, unknown>> {
  const wire: Array<{ role: 'user' | 'assistant'; content: Array<Record<string, unknown>> }> = [];
  const push = (role: 'user' | 'assistant', blocks: Array<Record<string, unknown>>) => {
    const last = wire.at(-1);
    if (last?.role === role) last.content.push(...blocks);
    else wire.push({ role, content: blocks });
  };
  for (const message of messages) {
    if (message.role === 'user') push('user', [{ type: 'text', text: message.text }]);
    else if (message.role === 'tool')
      push('user', [
        {
          type: 'tool_result',
          tool_use_id: message.callId,
          content: message.content,
          is_error: message.isError,
        },
      ]);
    else
      push('assistant', [
        ...(message.text ? [{ type: 'text', text: message.text }] : []),
        ...message.toolCalls.map((call) => ({
          type: 'tool_use',
          id: call.id,
          name: call.name,
          input: typeof call.arguments === 'string' ? safeObject(call.arguments) : call.arguments,
        })),
      ]);
  }
  return wire;
}

function safeObject(text: string): Record<string, unknown> {
  try {
    const parsed = JSON.parse(text) as unknown;
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}

export function anthropicMessagesModel(settings: ModelSettings): ChatModel {
  const url = `${settings.url.replace(/\/+$/, '')}/v1/messages`;
  return {
    description: `${settings.model} (Anthropic Messages API at ${settings.url}, ${keySource(settings)})`,
    async complete(system, messages, tools) {
      const answer = await postJson(
        settings,
        url,
        {
          'anthropic-version': ANTHROPIC_VERSION,
          ...(settings.apiKey ? { 'x-api-key': settings.apiKey } : {}),
        },
        {
          model: settings.model,
          max_tokens: MAX_TOKENS,
          system,
          messages: wireMessages(messages),
          ...(tools.length > 0
            ? {
                tools: tools.map((tool) => ({
                  name: tool.name,
                  description: tool.description,
                  input_schema: tool.inputSchema,
                })),
              }
            : {}),
        },
      );
      if (!Array.isArray(answer.content)) throw new ModelError('the model answered without content blocks');
      const blocks = answer.content as Array<Record<string, unknown>>;
      const text = blocks
        .filter((block) => block.type === 'text' && typeof block.text === 'string')
        .map((block) => block.text as string)
        .join('\n');
      const toolCalls: ModelToolCall[] = blocks
        .filter((block) => block.type === 'tool_use')
        .map((block, index) => ({
          id: typeof block.id === 'string' ? block.id : `toolu-${index}`,
          name: typeof block.name === 'string' ? block.name : '',
          arguments:
            typeof block.input === 'object' && block.input !== null
              ? (block.input as Record<string, unknown>)
              : '',
        }));
      return { text, toolCalls };
    },
  };
}
