import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import {
  CLIENT_ONLY_KEYS, TRIGGER_AUTOMATIC, TRIGGER_INVOKE, answerConfiguration, changeImpact,
  collectServerSettings, sectionOf, serverKeysFromManifest, shouldRequestInline,
} from '../src/settings';

const manifest = {
  contributes: {
    configuration: {
      properties: {
        'slm.enable': { type: 'boolean' },
        'slm.serverPath': { type: 'string' },
        'slm.venv': { type: 'string' },
        'slm.automaticSuggestions': { type: 'boolean' },
        'slm.model.name': { type: 'string' },
        'slm.completion.maxTokens': { type: 'integer' },
        'slm.completion.enabled': { type: 'boolean' },
        'slm.logLevel': { type: 'string' },
      },
    },
  },
};

test('server keys exclude client-only settings', () => {
  assert.deepEqual(serverKeysFromManifest(manifest), [
    'slm.model.name', 'slm.completion.maxTokens', 'slm.completion.enabled', 'slm.logLevel',
  ]);
  assert.deepEqual(serverKeysFromManifest({ contributes: { configuration: [manifest.contributes.configuration] } }).length, 4);
  assert.deepEqual(serverKeysFromManifest({}), []);
});

test('settings are collected into the nested camelCase object', () => {
  const values: Record<string, unknown> = {
    'slm.model.name': 'tiny',
    'slm.completion.maxTokens': 32,
    'slm.completion.enabled': false,
    'slm.logLevel': 'debug',
    'slm.serverPath': '/should/not/be/sent',
  };
  const got = collectServerSettings(serverKeysFromManifest(manifest), (key) => values[key]);
  assert.deepEqual(got, {
    model: { name: 'tiny' },
    completion: { maxTokens: 32, enabled: false },
    logLevel: 'debug',
  });
});

test('undefined values are left out', () => {
  const got = collectServerSettings(['slm.model.name', 'slm.completion.maxTokens'], (key) => (key === 'slm.model.name' ? 'x' : undefined));
  assert.deepEqual(got, { model: { name: 'x' } });
});

test('workspace/configuration answers the slm section and keeps other sections', () => {
  const settings = { completion: { maxTokens: 10 }, logLevel: 'info' };
  const got = answerConfiguration(
    [{ section: 'slm' }, { section: 'editor' }, { section: 'slm.completion' }, { section: 'slm.nope.deeper' }, {}],
    [{ full: 'vscode slm object' }, { tabSize: 4 }, 'x', 'y', 'z'],
    settings,
  );
  assert.deepEqual(got, [settings, { tabSize: 4 }, { maxTokens: 10 }, null, 'z']);
  assert.equal(sectionOf(settings, 'slm.completion.maxTokens'), 10);
  assert.equal(sectionOf(settings, 'other'), undefined);
});

test('configuration changes: restart, notify or just redraw', () => {
  const keys = ['slm.completion.maxTokens'];
  const affects = (changed: string[]) => (key: string) => changed.some((c) => c === key || c.startsWith(key + '.'));
  assert.deepEqual(changeImpact(affects(['slm.serverPath']), keys), { restart: true, notify: false, status: false });
  assert.deepEqual(changeImpact(affects(['slm.completion.maxTokens']), keys), { restart: false, notify: true, status: false });
  assert.deepEqual(changeImpact(affects(['slm.automaticSuggestions']), keys), { restart: false, notify: false, status: true });
});

test('automatic suggestions off still allows explicit invocation', () => {
  assert.equal(shouldRequestInline(TRIGGER_AUTOMATIC, true), true);
  assert.equal(shouldRequestInline(TRIGGER_AUTOMATIC, false), false);
  assert.equal(shouldRequestInline(TRIGGER_INVOKE, false), true);
  assert.ok(CLIENT_ONLY_KEYS.includes('slm.serverPath'));
});
