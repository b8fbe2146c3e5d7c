import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadAgentConfig } from '../config.ts';
import { changesThings } from './conversation.ts';
import { DEFAULT_MODEL_KEY_ENV, modelSettingsFrom } from './model-settings.ts';

test('flags win over the configuration file; the key comes from the variable it names, nothing else', () => {
  const settings = modelSettingsFrom(
    { name: 'from-flag' },
    { api: 'anthropic', url: 'https://api.anthropic.com', name: 'from-file', keyEnv: 'MY_KEY' },
    { MY_KEY: 'k1', [DEFAULT_MODEL_KEY_ENV]: 'not-this-one' },
  );
  assert.deepEqual(
    [settings.api, settings.url, settings.model, settings.apiKey],
    ['anthropic', 'https://api.anthropic.com', 'from-flag', 'k1'],
  );
  const local = modelSettingsFrom({ url: 'http://localhost:11434/v1', name: 'llama3.1' }, undefined, {});
  assert.equal(local.api, 'openai');
  assert.equal(local.apiKey, undefined, 'no key: none is sent (a local server)');
});

test('a missing model, an unknown API or a URL that is not http(s) is a usage error saying what to give', () => {
  assert.throws(() => modelSettingsFrom({}, undefined, {}), /--model-url .*--model/);
  assert.throws(
    () => modelSettingsFrom({ api: 'gemini', url: 'https://x', name: 'm' }, undefined, {}),
    /openai or anthropic/,
  );
  assert.throws(
    () => modelSettingsFrom({ url: 'file:///etc/passwd', name: 'm' }, undefined, {}),
    /only https/,
  );
  assert.throws(
    () => modelSettingsFrom({ url: 'http://models.example.com/v1', name: 'm' }, undefined, {}),
    /only https, or http on localhost/,
    'the conversation and the key would travel in clear',
  );
  assert.equal(
    modelSettingsFrom({ url: 'http://127.0.0.1:8080/v1', name: 'm' }, undefined, {}).url,
    'http://127.0.0.1:8080/v1',
  );
});

test('the agent configuration file names the model, never holds its key', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-agent-config-'));
  const file = path.join(dir, 'agent.json');
  writeFileSync(file, JSON.stringify({ model: { url: 'http://localhost:11434/v1', name: 'llama3.1' } }));
  assert.deepEqual(loadAgentConfig(file, true).model, { url: 'http://localhost:11434/v1', name: 'llama3.1' });
  writeFileSync(file, JSON.stringify({ model: { url: 'https://api.openai.com/v1', apiKey: 'sk-…' } }));
  assert.throws(() => loadAgentConfig(file, true), /unknown key "apiKey".*keyEnv names the variable/);
});

test('what asks for confirmation: anything not read-only, additive changes included', () => {
  const tool = (annotations: Record<string, boolean> | undefined) =>
    ({ name: 't', inputSchema: { type: 'object' }, ...(annotations ? { annotations } : {}) }) as Parameters<
      typeof changesThings
    >[0];
  assert.equal(changesThings(tool({ readOnlyHint: true })), false);
  assert.equal(changesThings(tool({ readOnlyHint: false, destructiveHint: true })), true);
  assert.equal(changesThings(tool(undefined)), true, 'unannotated: treated as changing things');
  assert.equal(
    changesThings(tool({ readOnlyHint: false, destructiveHint: false })),
    true,
    'an additive change (an order, a message) is still a change',
  );
});
