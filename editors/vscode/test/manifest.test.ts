import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { COMMANDS } from '../src/controller';
import { CLIENT_ONLY_KEYS, serverKeysFromManifest } from '../src/settings';

// Compiled to out/test/, so the extension root is two levels up.
const root = path.resolve(__dirname, '..', '..');
const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

test('every command the extension registers is contributed with a title', () => {
  const contributed = new Map<string, { title: string }>(
    manifest.contributes.commands.map((c: { command: string; title: string }) => [c.command, c]),
  );
  for (const command of Object.values(COMMANDS)) {
    assert.ok(contributed.get(command)?.title, `${command} is not in contributes.commands`);
  }
  assert.equal(contributed.size, Object.values(COMMANDS).length);
});

test('extension commands do not collide with server commands registered by the client', () => {
  for (const command of Object.values(COMMANDS)) {
    assert.ok(!['slm.reindex', 'slm.search'].includes(command), command);
  }
});

test('client-only settings are contributed, and the server settings were generated', () => {
  const properties = manifest.contributes.configuration.properties;
  for (const key of CLIENT_ONLY_KEYS) {
    assert.ok(properties[key], `${key} missing`);
  }
  const serverKeys = serverKeysFromManifest(manifest);
  assert.ok(serverKeys.includes('slm.completion.maxTokens'));
  assert.ok(serverKeys.includes('slm.model.name'));
  for (const key of serverKeys) {
    const prop = properties[key];
    assert.ok(['integer', 'number', 'boolean', 'string'].includes(prop.type), key);
    assert.ok('default' in prop, key);
    assert.ok(prop.markdownDescription, key);
  }
});

test('the entry point is the compiled extension', () => {
  assert.equal(manifest.main, './dist/extension.js');
  assert.ok(fs.existsSync(path.join(root, 'src', 'extension.ts')));
  assert.ok(manifest.dependencies['vscode-languageclient']);
});

test('Alt+\\ asks for an inline suggestion (VS Code 1.100 has no default key for it)', () => {
  const bindings: { command: string; key: string; when?: string }[] = manifest.contributes.keybindings;
  const trigger = bindings.find((b) => b.command === 'editor.action.inlineSuggest.trigger');
  assert.ok(trigger, 'no keybinding for editor.action.inlineSuggest.trigger');
  assert.equal(trigger.key, 'alt+\\');
  assert.match(trigger.when ?? '', /editorTextFocus/);
});
