// The wiring in vscodeHost.ts: how the LanguageClient is constructed (server command,
// initializationOptions, the workspace/configuration and inline completion middleware),
// with `vscode` and `vscode-languageclient/node` replaced by recorders.
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { test } from 'node:test';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const Module = require('node:module');

interface Constructed {
  id: string;
  name: string;
  serverOptions: { command: string; args: string[]; options?: { cwd?: string } };
  clientOptions: {
    documentSelector: unknown[];
    initializationOptions: () => unknown;
    middleware: {
      provideInlineCompletionItems: (...args: unknown[]) => unknown;
      workspace: { configuration: (params: unknown, token: unknown, next: unknown) => Promise<unknown> };
    };
  };
  notifications: Map<string, (params: unknown) => void>;
  stateListeners: ((e: { oldState: number; newState: number }) => void)[];
}

function load(config: Record<string, unknown>) {
  const constructed: Constructed[] = [];
  const disposable = { dispose() {} };
  const vscode = {
    StatusBarAlignment: { Right: 2 },
    ConfigurationTarget: { Global: 1 },
    ThemeColor: class {},
    window: {
      createOutputChannel: () => ({ info() {}, show() {}, dispose() {} }),
      createStatusBarItem: () => ({ show() {}, dispose() {} }),
    },
    workspace: {
      workspaceFolders: [{ uri: { fsPath: '/proj' } }],
      getConfiguration: () => ({ get: (key: string) => config[key] }),
    },
  };
  const languageclient = {
    TransportKind: { stdio: 0 },
    State: { Stopped: 1, Starting: 3, Running: 2 },
    LanguageClient: class {
      record: Constructed;
      constructor(id: string, name: string, serverOptions: never, clientOptions: never) {
        this.record = { id, name, serverOptions, clientOptions, notifications: new Map(), stateListeners: [] };
        constructed.push(this.record);
      }
      onDidChangeState(listener: (e: { oldState: number; newState: number }) => void) {
        this.record.stateListeners.push(listener);
        return disposable;
      }
      onNotification(method: string, handler: (params: unknown) => void) {
        this.record.notifications.set(method, handler);
        return disposable;
      }
      async start() {}
      async stop() {}
      async sendNotification() {}
      async sendRequest() {}
    },
  };
  const original = Module._load;
  Module._load = function (request: string, ...rest: unknown[]) {
    if (request === 'vscode') {
      return vscode;
    }
    if (request === 'vscode-languageclient/node') {
      return languageclient;
    }
    return original.call(this, request, ...rest);
  };
  try {
    const file = path.resolve(__dirname, '..', 'src', 'vscodeHost.js');
    delete require.cache[file];
    const { VscodeHost } = require(file);
    const manifest = require(path.resolve(__dirname, '..', '..', 'package.json'));
    const host = new VscodeHost({ extension: { packageJSON: manifest } }, 'slm.toggleSuggestions');
    return { host, constructed };
  } finally {
    Module._load = original;
  }
}

const settings = { completion: { maxTokens: 9 }, logLevel: 'debug' };

test('the client runs the resolved command over stdio in the workspace folder', () => {
  const { host, constructed } = load({});
  host.createClient({ command: '/venv/bin/slm-lsp', args: ['serve'], source: 'venv' }, {
    settings: () => settings, allowInline: () => true, stopped: () => {},
  });
  assert.equal(constructed.length, 1);
  const c = constructed[0];
  assert.equal(c.id, 'slm-lsp');
  assert.equal(c.serverOptions.command, '/venv/bin/slm-lsp');
  assert.deepEqual(c.serverOptions.args, ['serve']);
  assert.equal(c.serverOptions.options?.cwd, '/proj');
  assert.deepEqual(c.clientOptions.documentSelector, [{ scheme: 'file' }, { scheme: 'untitled' }]);
  assert.deepEqual(c.clientOptions.initializationOptions(), { slm: settings });
});

test('workspace/configuration for slm is answered with the server settings only', async () => {
  const { host, constructed } = load({});
  host.createClient({ command: 'x', args: ['serve'], source: 'PATH' }, {
    settings: () => settings, allowInline: () => true, stopped: () => {},
  });
  const configuration = constructed[0].clientOptions.middleware.workspace.configuration;
  const next = async () => [{ serverPath: '/leak', completion: { maxTokens: 9 } }, { tabSize: 2 }];
  const answer = await configuration({ items: [{ section: 'slm' }, { section: 'editor' }] }, {}, next);
  assert.deepEqual(answer, [settings, { tabSize: 2 }]);
});

test('automatic inline requests are dropped when suggestions are off; explicit ones go through', async () => {
  const { host, constructed } = load({});
  let automatic = false;
  host.createClient({ command: 'x', args: ['serve'], source: 'PATH' }, {
    settings: () => settings, allowInline: (kind: number) => kind === 0 || automatic, stopped: () => {},
  });
  const provide = constructed[0].clientOptions.middleware.provideInlineCompletionItems;
  const next = () => ['item'];
  assert.equal(provide('doc', 'pos', { triggerKind: 1 }, 'token', next), null);
  assert.deepEqual(provide('doc', 'pos', { triggerKind: 0 }, 'token', next), ['item']);
  automatic = true;
  assert.deepEqual(provide('doc', 'pos', { triggerKind: 1 }, 'token', next), ['item']);
});

test('a stopped client is reported to the controller', () => {
  const { host, constructed } = load({});
  let stopped = 0;
  host.createClient({ command: 'x', args: ['serve'], source: 'PATH' }, {
    settings: () => settings, allowInline: () => true, stopped: () => { stopped += 1; },
  });
  constructed[0].stateListeners[0]({ oldState: 2, newState: 1 });
  constructed[0].stateListeners[0]({ oldState: 3, newState: 2 });
  assert.equal(stopped, 1);
});

test('settings are read with their full keys', () => {
  const { host } = load({ 'slm.completion.maxTokens': 12 });
  assert.equal(host.get('slm.completion.maxTokens'), 12);
  assert.ok(host.serverKeys().includes('slm.completion.maxTokens'));
  assert.ok(!host.serverKeys().includes('slm.serverPath'));
});
