/**
 * OpenAI-compatible chat completions (`POST <url>/chat/completions`), as OpenAI, Ollama, vLLM and
 * LM Studio serve them: tools are `function` tools with a JSON Schema, the model's tool calls come
 * back in `message.tool_calls` with their arguments as JSON text, and each result goes back as a
 * `tool` message naming its call.
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

function wireMessage(message: ChatMessage): Record<string, unknown> {
  switch (message.role) {
    case 'user':
      return { role: 'user', content: message.text };
    case 'assistant':
      return {
        role: 'assistant',
        content: message.text === '' ? null : message.text,
        ...(message.toolCalls.length > 0
          ? {
              tool_calls: message.toolCalls.map((call) => ({
                id: call.id,
                type: 'function',
                function: {
                  name: call.name,
                  arguments:
                    typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments),
                },
              })),
            }
          : {}),
      };
    case 'tool':
      return { role: 'tool', tool_call_id: message.callId, content: message.content };
  }
}

export function openAiChatModel(settings: ModelSettings): ChatModel {
  const url = `${settings.url.replace(/\/+$/, '')}/chat/completions`;
  return {
    description: `${settings.model} (OpenAI-compatible chat completions at ${settings.url}, ${keySource(settings)})`,
    async complete(system, messages, tools) {
      const answer = await postJson(
        settings,
        url,
        settings.apiKey ? { authorization: `Bearer ${settings.apiKey}` } : {},
        {
          model: settings.model,
          messages: [{ role: 'system', content: system }, ...messages.map(wireMessage)],
          ...(tools.length > 0
            ? {
                tools: tools.map((tool) => ({
                  type: 'function',
                  function: { name: tool.name, description: tool.description, parameters: tool.inputSchema },
                })),
              }
            : {}),
        },
      );
      const message = (answer.choices as Array<{ message?: Record<string, unknown> }> | undefined)?.[0]
        ?.message;
      if (!message) throw new ModelError('the model answered without a message (no choices[0].message)');
      const calls = Array.isArray(message.tool_calls) ? message.tool_calls : [];
      const toolCalls: ModelToolCall[] = calls.map((call: Record<string, unknown>, index: number) => {
        const fn = (call.function ?? {}) as { name?: unknown; arguments?: unknown };
        return {
          id: typeof call.id === 'string' ? call.id : `call-${index}`,
          name: typeof fn.name === 'string' ? fn.name : '',
          arguments:
            typeof fn.arguments === 'string' || (typeof fn.arguments === 'object' && fn.arguments !== null)
              ? (fn.arguments as string | Record<string, unknown>)
              : '',
        };
      });
      return { text: typeof message.content === 'string' ? message.content : '', toolCalls };
    },
  };
}
