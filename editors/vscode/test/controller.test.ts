import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import {
  COMMANDS, CURSOR_NOTIFICATION, ClientHandle, ClientHooks, Controller, DID_CHANGE_CONFIGURATION, EXECUTE_COMMAND, Host,
  STATUS_NOTIFICATION, SUGGESTION_READY_NOTIFICATION,
} from '../src/controller';
import { ServerCommand } from '../src/serverCommand';

class FakeClient implements ClientHandle {
  handlers = new Map<string, (params: unknown) => void>();
  notifications: [string, unknown][] = [];
  requests: [string, unknown][] = [];
  started = false;
  stopped = false;
  failStart: Error | undefined;

  constructor(readonly command: ServerCommand, readonly hooks: ClientHooks) {}
  async start() {
    if (this.failStart) {
      throw this.failStart;
    }
    this.started = true;
  }
  async stop() {
    this.stopped = true;
    this.hooks.stopped();
  }
  onNotification(method: string, handler: (params: unknown) => void) {
    this.handlers.set(method, handler);
  }
  async sendNotification(method: string, params: unknown) {
    this.notifications.push([method, params]);
  }
  async sendRequest(method: string, params: unknown) {
    this.requests.push([method, params]);
    return null;
  }
  emit(method: string, params: unknown) {
    this.handlers.get(method)?.(params);
  }
}

class FakeHost implements Host {
  config: Record<string, unknown> = {
    'slm.enable': true,
    'slm.serverPath': '',
    'slm.venv': '/venv',
    'slm.automaticSuggestions': true,
    'slm.completion.maxTokens': 64,
    'slm.model.name': 'qwen2.5-coder-0.5b',
  };
  files = ['/venv/bin/slm-lsp'];
  clients: FakeClient[] = [];
  status = { text: '', tooltip: '', severity: 'normal' };
  logs: string[] = [];
  errors: string[] = [];
  infos: string[] = [];
  terminals: { name: string; command: string; args: string[] }[] = [];
  terminalExit: number | undefined = 0;
  errorChoice: string | undefined;
  openedSettings: string[] = [];
  logShown = 0;

  get(key: string) {
    return this.config[key];
  }
  async update(key: string, value: unknown) {
    this.config[key] = value;
  }
  serverKeys() {
    return ['slm.model.name', 'slm.completion.maxTokens'];
  }
  resolveEnvironment() {
    return {
      workspaceFolder: '/proj',
      home: '/home/u',
      platform: 'linux' as const,
      env: { PATH: '/usr/bin' },
      isExecutable: (file: string) => this.files.includes(file),
    };
  }
  createClient(command: ServerCommand, hooks: ClientHooks) {
    const client = new FakeClient(command, hooks);
    this.clients.push(client);
    return client;
  }
  setStatus(text: string, tooltip: string, severity: 'normal' | 'warning' | 'error') {
    this.status = { text, tooltip, severity };
  }
  log(line: string) {
    this.logs.push(line);
  }
  showLog() {
    this.logShown += 1;
  }
  async showError(message: string) {
    this.errors.push(message);
    return this.errorChoice;
  }
  showInfo(message: string) {
    this.infos.push(message);
  }
  async runInTerminal(name: string, command: string, args: string[]) {
    this.terminals.push({ name, command, args });
    return this.terminalExit;
  }
  openSettings(query: string) {
    this.openedSettings.push(query);
  }
  cursor: { uri: string; line: number; character: number } | undefined;
  triggers = 0;
  cursorIs(uri: string, line: number, character: number) {
    const c = this.cursor;
    return !!c && c.uri === uri && c.line === line && c.character === character;
  }
  triggerInlineSuggest() {
    this.triggers += 1;
  }
  get client(): FakeClient {
    return this.clients[this.clients.length - 1];
  }
}

test('start resolves the server in the venv and passes settings as initializationOptions', async () => {
  const host = new FakeHost();
  const ctl = new Controller(host);
  await ctl.start();
  assert.equal(host.clients.length, 1);
  assert.deepEqual(host.client.command, { command: '/venv/bin/slm-lsp', args: ['serve'], source: 'venv' });
  assert.ok(host.client.started);
  assert.deepEqual(host.client.hooks.settings(), {
    model: { name: 'qwen2.5-coder-0.5b' },
    completion: { maxTokens: 64 },
  });
  assert.equal(ctl.currentState.state, 'loading');
  assert.match(host.status.text, /~spin/);
});

test('slm/status notifications drive the status bar', async () => {
  const host = new FakeHost();
  const ctl = new Controller(host);
  await ctl.start();
  host.client.emit(STATUS_NOTIFICATION, { state: 'indexing', message: '3/10 files' });
  assert.match(host.status.text, /3\/10 files/);
  host.client.emit(STATUS_NOTIFICATION, { state: 'ready', message: '' });
  assert.equal(ctl.currentState.state, 'ready');
  assert.equal(host.status.severity, 'normal');
  host.client.emit(STATUS_NOTIFICATION, { state: 'error', message: 'no model installed' });
  assert.equal(host.status.severity, 'error');
  assert.match(host.status.tooltip, /no model installed/);
});

test('a missing executable shows an error with a way to the settings', async () => {
  const host = new FakeHost();
  host.files = [];
  host.errorChoice = 'Open Settings';
  const ctl = new Controller(host);
  await ctl.start();
  assert.equal(host.clients.length, 0);
  assert.equal(ctl.currentState.state, 'error');
  assert.match(host.errors[0], /venv/);
  await new Promise((resolve) => setImmediate(resolve));  // the user's choice comes later
  assert.deepEqual(host.openedSettings, ['slm.serverPath']);
});

test('start does not wait for the user to dismiss the error', async () => {
  const host = new FakeHost();
  host.files = [];
  host.showError = () => new Promise(() => {});  // a notification nobody clicks
  const ctl = new Controller(host);
  await ctl.start();  // would never return if it waited for the notification
  assert.equal(ctl.currentState.state, 'error');
  host.files = ['/opt/slm/bin/slm-lsp'];
  host.config['slm.serverPath'] = '/opt/slm/bin/slm-lsp';
  await ctl.onConfigurationChanged((key) => key === 'slm' || key === 'slm.serverPath');
  assert.equal(host.clients.length, 1);
  assert.equal(ctl.currentState.state, 'loading');
});

test('a server that fails to start is reported', async () => {
  const host = new FakeHost();
  const ctl = new Controller(host);
  const orig = host.createClient.bind(host);
  host.createClient = (command, hooks) => {
    const c = orig(command, hooks);
    c.failStart = new Error('spawn EACCES');
    return c;
  };
  await ctl.start();
  assert.equal(ctl.currentState.state, 'error');
  assert.match(host.errors[0], /EACCES/);
});

test('slm.enable = false does not start the server', async () => {
  const host = new FakeHost();
  host.config['slm.enable'] = false;
  const ctl = new Controller(host);
  await ctl.start();
  assert.equal(host.clients.length, 0);
  assert.equal(ctl.currentState.state, 'disabled');
});

test('toggling suggestions flips the setting, the status and the inline middleware', async () => {
  const host = new FakeHost();
  const ctl = new Controller(host);
  await ctl.start();
  host.client.emit(STATUS_NOTIFICATION, { state: 'ready', message: '' });
  const before = host.status.text;
  assert.equal(host.client.hooks.allowInline(1), true);
  assert.equal(await ctl.toggleSuggestions(), false);
  assert.equal(host.config['slm.automaticSuggestions'], false);
  assert.notEqual(host.status.text, before);
  assert.equal(host.client.hooks.allowInline(1), false, 'automatic requests are dropped');
  assert.equal(host.client.hooks.allowInline(0), true, 'explicit requests still go through');
  assert.equal(await ctl.toggleSuggestions(), true);
  assert.equal(host.status.text, before);
});

test('changing a server setting sends didChangeConfiguration with the new values', async () => {
  const host = new FakeHost();
  const ctl = new Controller(host);
  await ctl.start();
  host.config['slm.completion.maxTokens'] = 12;
  await ctl.onConfigurationChanged((key) => ['slm', 'slm.completion', 'slm.completion.maxTokens'].includes(key));
  assert.deepEqual(host.client.notifications, [
    [DID_CHANGE_CONFIGURATION, { settings: { slm: { model: { name: 'qwen2.5-coder-0.5b' }, completion: { maxTokens: 12 } } } }],
  ]);
  assert.equal(host.clients.length, 1);
});

test('changing serverPath or venv restarts the server', async () => {
  const host = new FakeHost();
  const ctl = new Controller(host);
  await ctl.start();
  const first = host.client;
  host.config['slm.serverPath'] = '/opt/slm-lsp';
  host.files.push('/opt/slm-lsp');
  await ctl.onConfigurationChanged((key) => key === 'slm' || key === 'slm.serverPath');
  assert.ok(first.stopped);
  assert.equal(host.clients.length, 2);
  assert.equal(host.client.command.command, '/opt/slm-lsp');
});

test('unrelated configuration changes are ignored', async () => {
  const host = new FakeHost();
  const ctl = new Controller(host);
  await ctl.start();
  await ctl.onConfigurationChanged((key) => key.startsWith('editor'));
  assert.deepEqual(host.client.notifications, []);
});

test('reindex executes the server command slm.reindex', async () => {
  const host = new FakeHost();
  const ctl = new Controller(host);
  await ctl.reindex();
  assert.match(host.errors[0], /not running/);
  await ctl.start();
  await ctl.reindex();
  assert.deepEqual(host.client.requests, [[EXECUTE_COMMAND, { command: 'slm.reindex', arguments: [] }]]);
});

test('install model runs slm-lsp model install in a terminal, then restarts', async () => {
  const host = new FakeHost();
  const ctl = new Controller(host);
  await ctl.start();
  await ctl.installModel();
  assert.deepEqual(host.terminals, [{ name: 'slm-lsp model install', command: '/venv/bin/slm-lsp', args: ['model', 'install'] }]);
  assert.equal(host.clients.length, 2, 'restarted after a successful install');
  host.terminalExit = 1;
  await ctl.installModel();
  assert.equal(host.clients.length, 2, 'no restart after a failed install');
});

test('a server that exits on its own shows as stopped; stop() does not', async () => {
  const host = new FakeHost();
  const ctl = new Controller(host);
  await ctl.start();
  host.client.hooks.stopped();
  assert.equal(ctl.currentState.state, 'stopped');
  assert.equal(host.status.severity, 'warning');
  await ctl.start();
  await ctl.stop();
  assert.equal(ctl.currentState.message, '');
});

test('show log opens the output channel', () => {
  const host = new FakeHost();
  new Controller(host).showLog();
  assert.equal(host.logShown, 1);
  assert.ok(Object.values(COMMANDS).every((c) => c.startsWith('slm.')));
});

test('a resting cursor is reported once with slm/cursor, while the model loads or is ready', async () => {
  const host = new FakeHost();
  const ctl = new Controller(host, 20);
  const at = (line: number, character: number) =>
    [CURSOR_NOTIFICATION, { textDocument: { uri: 'file:///proj/a.py' }, position: { line, character } }];
  ctl.onCursorMoved('file:///proj/a.py', 1, 0);
  await new Promise((resolve) => setTimeout(resolve, 60));  // no server yet: dropped
  await ctl.start();
  ctl.onCursorMoved('file:///proj/a.py', 3, 1);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.deepEqual(host.client.notifications, [at(3, 1)], 'the server warms it after loading');
  host.client.emit(STATUS_NOTIFICATION, { state: 'ready', message: '' });
  ctl.onCursorMoved('file:///proj/a.py', 3, 1);
  ctl.onCursorMoved('file:///proj/a.py', 40, 8);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.deepEqual(host.client.notifications, [at(3, 1), at(40, 8)]);
  host.client.emit(STATUS_NOTIFICATION, { state: 'error', message: 'no model' });
  ctl.onCursorMoved('file:///proj/a.py', 5, 0);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(host.client.notifications.length, 2, 'nothing to warm without a model');
  host.client.emit(STATUS_NOTIFICATION, { state: 'ready', message: '' });
  await ctl.toggleSuggestions();  // automatic suggestions off: no warming either
  ctl.onCursorMoved('file:///proj/a.py', 7, 0);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(host.client.notifications.length, 2);
  ctl.onCursorMoved('file:///proj/a.py', 9, 0);
  await ctl.stop();  // a pending report is dropped with the client
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(host.client.notifications.length, 2);
});

test('a late suggestion asks VS Code again, only where the cursor still is', async () => {
  const host = new FakeHost();
  const ctl = new Controller(host);
  await ctl.start();
  const ready = (line: number, character: number) => host.client.emit(SUGGESTION_READY_NOTIFICATION, {
    textDocument: { uri: 'file:///proj/a.py' }, position: { line, character },
  });
  host.cursor = { uri: 'file:///proj/a.py', line: 3, character: 8 };
  ready(3, 8);
  assert.equal(host.triggers, 1);
  ready(3, 9);  // the user moved on (or typed): no stale suggestion is asked for
  assert.equal(host.triggers, 1);
  host.client.emit(SUGGESTION_READY_NOTIFICATION, { position: 'garbage' });
  assert.equal(host.triggers, 1);
  assert.ok(host.logs.some((line) => line.includes('malformed')));
});
