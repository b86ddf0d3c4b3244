/**
 * The only module (besides extension.ts) that touches the `vscode` API: implements the
 * controller's `Host` with VS Code windows, settings, terminals and vscode-languageclient.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as readline from 'readline';
import { Readable } from 'stream';
import * as vscode from 'vscode';
import { LanguageClient, LanguageClientOptions, ServerOptions, State, TransportKind } from 'vscode-languageclient/node';
import { ClientHandle, ClientHooks, Host } from './controller';
import { LineClassifier } from './serverLog';
import { ServerCommand } from './serverCommand';
import { answerConfiguration, serverKeysFromManifest } from './settings';

function isExecutable(file: string): boolean {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) {
      return false;
    }
    if (process.platform === 'win32') {
      return true;
    }
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export class VscodeHost implements Host, vscode.Disposable {
  readonly output: vscode.LogOutputChannel;
  private readonly statusItem: vscode.StatusBarItem;
  private readonly keys: string[];

  constructor(context: vscode.ExtensionContext, toggleCommand: string) {
    this.output = vscode.window.createOutputChannel('slm-lsp', { log: true });
    this.statusItem = vscode.window.createStatusBarItem('slm.status', vscode.StatusBarAlignment.Right, 100);
    this.statusItem.name = 'slm-lsp';
    this.statusItem.command = toggleCommand;
    this.statusItem.show();
    this.keys = serverKeysFromManifest(context.extension.packageJSON);
  }

  get(key: string): unknown {
    return vscode.workspace.getConfiguration().get(key);
  }

  async update(key: string, value: unknown): Promise<void> {
    await vscode.workspace.getConfiguration().update(key, value, vscode.ConfigurationTarget.Global);
  }

  serverKeys(): string[] {
    return this.keys;
  }

  resolveEnvironment() {
    return {
      workspaceFolder: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath,
      home: os.homedir(),
      platform: process.platform,
      env: process.env,
      isExecutable,
    };
  }

  createClient(command: ServerCommand, hooks: ClientHooks): ClientHandle {
    const serverOptions: ServerOptions = {
      command: command.command,
      args: command.args,
      transport: TransportKind.stdio,
      options: { cwd: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
      outputChannel: this.output,
      stdioOptions: { stdout: pipeLog, stderr: pipeLog },
      initializationOptions: () => ({ slm: hooks.settings() }),
      middleware: {
        // VS Code shows the server's suggestions as ghost text; its completion fallback
        // (for clients without inline completion) would put the same suggestion into
        // the suggest list, and each such request would supersede the inline one.
        provideCompletionItem: () => [],
        provideInlineCompletionItems: (document, position, context, token, next) =>
          hooks.allowInline(context.triggerKind) ? next(document, position, context, token) : null,
        workspace: {
          configuration: async (params, token, next) => {
            const defaults = await next(params, token);
            return answerConfiguration(params.items, Array.isArray(defaults) ? defaults : [], hooks.settings());
          },
        },
      },
    };
    const client = new LanguageClient('slm-lsp', 'slm-lsp', serverOptions, clientOptions);
    client.onDidChangeState((event) => {
      if (event.newState === State.Stopped) {
        hooks.stopped();
      }
    });
    return {
      start: () => client.start(),
      stop: () => client.stop(),
      onNotification: (method, handler) => {
        client.onNotification(method, handler);
      },
      sendNotification: (method, params) => client.sendNotification(method, params),
      sendRequest: (method, params) => client.sendRequest(method, params),
    };
  }

  setStatus(text: string, tooltip: string, severity: 'normal' | 'warning' | 'error'): void {
    this.statusItem.text = text;
    this.statusItem.tooltip = tooltip;
    // Screen readers read the state, not the icon names in the text.
    this.statusItem.accessibilityInformation = { label: tooltip.split('\n').join('. ') };
    this.statusItem.backgroundColor = severity === 'normal'
      ? undefined
      : new vscode.ThemeColor(severity === 'error' ? 'statusBarItem.errorBackground' : 'statusBarItem.warningBackground');
  }

  log(line: string): void {
    this.output.info(line);
  }

  showLog(): void {
    this.output.show(true);
  }

  showError(message: string, ...actions: string[]): Promise<string | undefined> {
    return Promise.resolve(vscode.window.showErrorMessage(message, ...actions));
  }

  showInfo(message: string): void {
    vscode.window.setStatusBarMessage(message, 3000);
  }

  runInTerminal(name: string, command: string, args: string[]): Promise<number | undefined> {
    const terminal = vscode.window.createTerminal({ name, shellPath: command, shellArgs: args });
    terminal.show();
    return new Promise((resolve) => {
      const listener = vscode.window.onDidCloseTerminal((closed) => {
        if (closed === terminal) {
          listener.dispose();
          resolve(closed.exitStatus?.code);
        }
      });
    });
  }

  openSettings(query: string): void {
    void vscode.commands.executeCommand('workbench.action.openSettings', query);
  }

  cursorIs(uri: string, line: number, character: number): boolean {
    const editor = vscode.window.activeTextEditor;
    const selection = editor?.selection;
    return !!editor && !!selection && selection.isEmpty && editor.document.uri.toString() === uri
      && selection.active.line === line && selection.active.character === character;
  }

  triggerInlineSuggest(): void {
    void vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
  }

  dispose(): void {
    this.statusItem.dispose();
    this.output.dispose();
  }
}

/** A server output stream into the log channel, each line at the level it was logged at. */
function pipeLog(input: Readable, channel: vscode.LogOutputChannel): void {
  const classifier = new LineClassifier();
  readline.createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 })
    .on('line', (line) => {
      const { level, text } = classifier.classify(line);
      channel[level](text);
    });
}
