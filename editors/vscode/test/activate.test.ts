// Loads the bundled extension (dist/extension.js, what the .vsix ships) with a stand-in for
// the `vscode` module, activates it and runs its commands. The language server is not
// started (slm.enable = false, or a server path that does not exist).
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { test } from 'node:test';
import { COMMANDS } from '../src/controller';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const Module = require('node:module');

interface FakeState {
  config: Record<string, unknown>;
  commands: Map<string, (...args: unknown[]) => unknown>;
  status: { text: string; tooltip: unknown; command: unknown; shown: boolean };
  errors: string[];
  terminals: unknown[];
  updates: [string, unknown][];
  selectionListeners: ((event: unknown) => void)[];
  editorListeners: ((editor: unknown) => void)[];
  activeEditor: unknown;
}

function makeVscode(state: FakeState): unknown {
  const disposable = { dispose() {} };
  const classes = new Map<string, unknown>();
  const known: Record<string, unknown> = {
    StatusBarAlignment: { Left: 1, Right: 2 },
    ConfigurationTarget: { Global: 1, Workspace: 2, WorkspaceFolder: 3 },
    ThemeColor: class {
      constructor(readonly id: string) {}
    },
    window: {
      createOutputChannel: () => ({
        info() {}, warn() {}, error() {}, trace() {}, debug() {}, append() {}, appendLine() {},
        show() {}, hide() {}, clear() {}, dispose() {}, replace() {},
        onDidChangeLogLevel: () => disposable, logLevel: 2, name: 'slm-lsp',
      }),
      createStatusBarItem: () => ({
        set text(v: string) { state.status.text = v; },
        get text() { return state.status.text; },
        set tooltip(v: unknown) { state.status.tooltip = v; },
        set command(v: unknown) { state.status.command = v; },
        backgroundColor: undefined,
        name: '',
        show() { state.status.shown = true; },
        dispose() {},
      }),
      showErrorMessage: async (message: string) => {
        state.errors.push(message);
        return undefined;
      },
      setStatusBarMessage: () => disposable,
      createTerminal: (options: unknown) => {
        state.terminals.push(options);
        return { show() {}, dispose() {} };
      },
      onDidCloseTerminal: () => disposable,
      onDidChangeTextEditorSelection: (listener: (event: unknown) => void) => {
        state.selectionListeners.push(listener);
        return disposable;
      },
      onDidChangeActiveTextEditor: (listener: (editor: unknown) => void) => {
        state.editorListeners.push(listener);
        return disposable;
      },
      get activeTextEditor() { return state.activeEditor; },
    },
    workspace: {
      workspaceFolders: undefined,
      getConfiguration: () => ({
        get: (key: string) => state.config[key],
        update: async (key: string, value: unknown) => {
          state.updates.push([key, value]);
          state.config[key] = value;
        },
      }),
      onDidChangeConfiguration: () => disposable,
    },
    commands: {
      registerCommand: (id: string, fn: (...args: unknown[]) => unknown) => {
        assert.ok(!state.commands.has(id), `${id} registered twice`);
        state.commands.set(id, fn);
        return disposable;
      },
      executeCommand: async () => undefined,
    },
  };
  // Anything else (vscode-languageclient subclasses many vscode classes at load time).
  return new Proxy(known, {
    get(target, prop: string) {
      if (prop in target) {
        return target[prop];
      }
      if (!classes.has(prop)) {
        classes.set(prop, class {});
      }
      return classes.get(prop);
    },
  });
}

function loadExtension(state: FakeState) {
  const vscode = makeVscode(state);
  const original = Module._load;
  Module._load = function (request: string, ...rest: unknown[]) {
    if (request === 'vscode') {
      return vscode;
    }
    return original.call(this, request, ...rest);
  };
  try {
    const file = path.resolve(__dirname, '..', '..', 'dist', 'extension.js');
    delete require.cache[file];
    return require(file);
  } finally {
    Module._load = original;
  }
}

function fakeContext() {
  const manifest = require(path.resolve(__dirname, '..', '..', 'package.json'));
  return { subscriptions: [] as { dispose(): void }[], extension: { packageJSON: manifest } };
}

function freshState(config: Record<string, unknown>): FakeState {
  return {
    config: { 'slm.enable': true, 'slm.serverPath': '', 'slm.venv': '', 'slm.automaticSuggestions': true, ...config },
    commands: new Map(),
    status: { text: '', tooltip: undefined, command: undefined, shown: false },
    errors: [],
    terminals: [],
    updates: [],
    selectionListeners: [],
    editorListeners: [],
    activeEditor: {
      selections: [{ isEmpty: true, active: { line: 1, character: 0 } }],
      document: { uri: { scheme: 'file', toString: () => 'file:///open.py' } },
    },
  };
}

test('the bundle activates, registers its commands and shows the status item', async () => {
  const state = freshState({ 'slm.enable': false });
  const ext = loadExtension(state);
  const context = fakeContext();
  await ext.activate(context);
  assert.deepEqual([...state.commands.keys()].sort(), Object.values(COMMANDS).sort());
  assert.ok(state.status.shown);
  assert.equal(state.status.command, COMMANDS.toggleSuggestions);
  assert.match(state.status.text, /circle-slash/);
  assert.match(String(state.status.tooltip), /disabled/);
  await state.commands.get(COMMANDS.toggleSuggestions)!();
  assert.deepEqual(state.updates, [['slm.automaticSuggestions', false]]);
  assert.equal(state.selectionListeners.length, 1, 'cursor moves are watched (slm/cursor)');
  state.selectionListeners[0]({  // no server runs: nothing to report to, and no error
    selections: [{ isEmpty: true, active: { line: 3, character: 0 } }],
    textEditor: { document: { uri: { scheme: 'file', toString: () => 'file:///a.py' } } },
  });
  assert.equal(state.editorListeners.length, 1, 'switching editors is watched too');
  state.editorListeners[0](state.activeEditor);
  state.editorListeners[0](undefined);  // all editors closed
  for (const d of context.subscriptions) {
    d.dispose();
  }
  await ext.deactivate();
});

test('a missing server is reported, and install model needs the server too', async () => {
  const state = freshState({ 'slm.serverPath': '/nonexistent/slm-lsp' });
  const ext = loadExtension(state);
  await ext.activate(fakeContext());
  assert.match(state.errors[0], /slm\.serverPath is set to \/nonexistent\/slm-lsp/);
  assert.match(state.status.text, /\$\(error\)/);
  await state.commands.get(COMMANDS.installModel)!();
  assert.equal(state.terminals.length, 0);
  assert.equal(state.errors.length, 2);
  await ext.deactivate();
});

test('install model opens a terminal running slm-lsp model install', async () => {
  const exe = process.execPath; // any executable file stands in for slm-lsp
  const state = freshState({ 'slm.serverPath': exe, 'slm.enable': false });
  const ext = loadExtension(state);
  await ext.activate(fakeContext());
  void state.commands.get(COMMANDS.installModel)!();
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(state.terminals, [{ name: 'slm-lsp model install', shellPath: exe, shellArgs: ['model', 'install'] }]);
  await ext.deactivate();
});
