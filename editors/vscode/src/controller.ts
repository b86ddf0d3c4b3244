/**
 * The extension's behaviour, written against the small `Host` interface instead of the
 * `vscode` module so it can be unit tested with a fake host (see test/controller.test.ts).
 * `vscodeHost.ts` implements `Host` with the real VS Code and vscode-languageclient APIs.
 */
import { ResolveInput, ServerCommand, isResolveError, resolveServerCommand } from './serverCommand';
import { JsonObject, changeImpact, collectServerSettings, shouldRequestInline } from './settings';
import { ServerState, StatusParams, parseStatus, presentStatus } from './status';

export const STATUS_NOTIFICATION = 'slm/status';
export const DID_CHANGE_CONFIGURATION = 'workspace/didChangeConfiguration';
export const EXECUTE_COMMAND = 'workspace/executeCommand';
export const CURSOR_NOTIFICATION = 'slm/cursor';
/** The server finished a suggestion after its request timed out (and was answered empty). */
export const SUGGESTION_READY_NOTIFICATION = 'slm/suggestionReady';
/** How long the cursor must rest before the server is told to prepare a suggestion there. */
export const CURSOR_REST_MS = 400;

export const COMMANDS = {
  toggleSuggestions: 'slm.toggleSuggestions',
  reindex: 'slm.reindexWorkspace',
  showLog: 'slm.showLog',
  installModel: 'slm.installModel',
  restart: 'slm.restartServer',
} as const;

/** The language client as the controller uses it. */
export interface ClientHandle {
  start(): Promise<void>;
  stop(): Promise<void>;
  onNotification(method: string, handler: (params: unknown) => void): void;
  sendNotification(method: string, params: unknown): Promise<void>;
  sendRequest(method: string, params: unknown): Promise<unknown>;
}

/** Hooks the host's language client calls back into. */
export interface ClientHooks {
  /** `initializationOptions` and the answer for the `slm` configuration section. */
  settings(): JsonObject;
  /** Whether to forward an inline completion request (VS Code trigger kind). */
  allowInline(triggerKind: number): boolean;
  /** The client stopped for good (crash or stop()). */
  stopped(): void;
}

export interface Host {
  /** Value of a full key such as `slm.completion.maxTokens` (defaults included). */
  get(key: string): unknown;
  /** Writes a user (global) setting. */
  update(key: string, value: unknown): Promise<void>;
  /** The server keys contributed by package.json (every `slm.*` key but client-only ones). */
  serverKeys(): string[];
  /** Environment for server path resolution, minus the settings. */
  resolveEnvironment(): Omit<ResolveInput, 'serverPath' | 'venv'>;
  createClient(command: ServerCommand, hooks: ClientHooks): ClientHandle;
  setStatus(text: string, tooltip: string, severity: 'normal' | 'warning' | 'error'): void;
  log(line: string): void;
  showLog(): void;
  showError(message: string, ...actions: string[]): Promise<string | undefined>;
  showInfo(message: string): void;
  /** Runs a program in a new terminal; resolves with its exit code when the terminal closes. */
  runInTerminal(name: string, command: string, args: string[]): Promise<number | undefined>;
  openSettings(query: string): void;
  /** True if the active editor shows `uri` with an empty selection at (line, character). */
  cursorIs(uri: string, line: number, character: number): boolean;
  /** Asks VS Code for the inline suggestion at the cursor again. */
  triggerInlineSuggest(): void;
}

/** Server states in which `slm/cursor` is worth sending. */
const WARMABLE: ReadonlySet<ServerState> = new Set(['loading', 'ready', 'indexing']);

export class Controller {
  private client: ClientHandle | undefined;
  private state: ServerState = 'stopped';
  private message = '';
  private stopping = false;
  private cursorTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly host: Host, private readonly cursorRestMs = CURSOR_REST_MS) {}

  get currentState(): { state: ServerState; message: string } {
    return { state: this.state, message: this.message };
  }

  automatic(): boolean {
    return this.host.get('slm.automaticSuggestions') !== false;
  }

  settings(): JsonObject {
    return collectServerSettings(this.host.serverKeys(), (key) => this.host.get(key));
  }

  resolve(): ServerCommand | { error: string } {
    return resolveServerCommand({
      ...this.host.resolveEnvironment(),
      serverPath: String(this.host.get('slm.serverPath') ?? ''),
      venv: String(this.host.get('slm.venv') ?? ''),
    });
  }

  async start(): Promise<void> {
    if (this.client) {
      return;
    }
    if (this.host.get('slm.enable') === false) {
      this.setState('disabled', 'turned off by slm.enable');
      return;
    }
    const resolved = this.resolve();
    if (isResolveError(resolved)) {
      this.setState('error', resolved.error);
      this.host.log(resolved.error);
      // Not awaited: the notification stays until the user acts on it, and neither the
      // extension's activation nor a restart after a settings change may wait for that.
      void this.host.showError(resolved.error, 'Open Settings').then((choice) => {
        if (choice === 'Open Settings') {
          this.host.openSettings('slm.serverPath');
        }
      });
      return;
    }
    this.host.log(`starting ${resolved.command} ${resolved.args.join(' ')} (found via ${resolved.source})`);
    this.setState('starting', '');
    const client = this.host.createClient(resolved, {
      settings: () => this.settings(),
      allowInline: (kind) => shouldRequestInline(kind, this.automatic()),
      stopped: () => {
        if (this.client === client && !this.stopping) {
          this.client = undefined;
          this.setState('stopped', 'the server exited; see the log');
        }
      },
    });
    client.onNotification(STATUS_NOTIFICATION, (params) => this.onStatus(params as StatusParams));
    client.onNotification(SUGGESTION_READY_NOTIFICATION, (params) => this.onSuggestionReady(params));
    this.client = client;
    try {
      await client.start();
      if (this.state === 'starting') {
        this.setState('loading', '');
      }
    } catch (err) {
      this.client = undefined;
      const text = `slm-lsp failed to start: ${err instanceof Error ? err.message : String(err)}`;
      this.setState('error', text);
      this.host.log(text);
      void this.host.showError(text);
    }
  }

  async stop(): Promise<void> {
    this.forgetCursor();
    const client = this.client;
    this.client = undefined;
    if (client) {
      this.stopping = true;
      try {
        await client.stop();
      } catch (err) {
        this.host.log(`stopping the server: ${String(err)}`);
      } finally {
        this.stopping = false;
      }
    }
    this.setState('stopped', '');
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  onStatus(params: StatusParams | undefined): void {
    const { state, message } = parseStatus(params);
    this.setState(state, message);
  }

  /**
   * A suggestion came after its request had timed out. VS Code never asks again by
   * itself after an empty answer, so ask again if the cursor is still where the request
   * was: the server answers from its cache at once.
   */
  onSuggestionReady(params: unknown): void {
    const p = params as { textDocument?: { uri?: unknown }; position?: { line?: unknown; character?: unknown } };
    const uri = p?.textDocument?.uri;
    const line = p?.position?.line;
    const character = p?.position?.character;
    if (typeof uri !== 'string' || typeof line !== 'number' || typeof character !== 'number') {
      this.host.log(`${SUGGESTION_READY_NOTIFICATION}: ignoring malformed params ${JSON.stringify(params)}`);
      return;
    }
    if (this.host.cursorIs(uri, line, character)) {
      this.host.triggerInlineSuggest();
    }
  }

  /** React to a configuration change; `affects` is `event.affectsConfiguration`. */
  async onConfigurationChanged(affects: (key: string) => boolean): Promise<void> {
    if (!affects('slm')) {
      return;
    }
    const impact = changeImpact(affects, this.host.serverKeys());
    if (impact.restart) {
      await this.restart();
      return;
    }
    if (impact.notify && this.client) {
      await this.client.sendNotification(DID_CHANGE_CONFIGURATION, { settings: { slm: this.settings() } });
    }
    if (impact.status) {
      this.render();
    }
  }

  /**
   * The cursor moved (not by typing) in a document the server sees, or an editor was
   * opened or brought to the front. Once it rests for `cursorRestMs`, the server gets
   * `slm/cursor` and computes the suggestion there (after the model has loaded, when it
   * is still loading), so the first keystroke after a jump finds the prompt evaluated.
   */
  onCursorMoved(uri: string, line: number, character: number): void {
    this.forgetCursor();
    this.cursorTimer = setTimeout(() => {
      this.cursorTimer = undefined;
      if (this.client && WARMABLE.has(this.state) && this.automatic()) {
        this.client.sendNotification(CURSOR_NOTIFICATION, { textDocument: { uri }, position: { line, character } })
          .catch((err) => this.host.log(`${CURSOR_NOTIFICATION}: ${String(err)}`));
      }
    }, this.cursorRestMs);
  }

  private forgetCursor(): void {
    if (this.cursorTimer !== undefined) {
      clearTimeout(this.cursorTimer);
      this.cursorTimer = undefined;
    }
  }

  async toggleSuggestions(): Promise<boolean> {
    const next = !this.automatic();
    await this.host.update('slm.automaticSuggestions', next);
    this.render(next);
    this.host.showInfo(`slm-lsp: automatic suggestions ${next ? 'on' : 'off'}`);
    return next;
  }

  async reindex(): Promise<void> {
    if (!this.client) {
      void this.host.showError('slm-lsp is not running.');
      return;
    }
    await this.client.sendRequest(EXECUTE_COMMAND, { command: 'slm.reindex', arguments: [] });
  }

  showLog(): void {
    this.host.showLog();
  }

  /** Runs `slm-lsp model install` in a terminal and restarts the server when it succeeds. */
  async installModel(): Promise<void> {
    const resolved = this.resolve();
    if (isResolveError(resolved)) {
      void this.host.showError(resolved.error);
      return;
    }
    const code = await this.host.runInTerminal('slm-lsp model install', resolved.command, ['model', 'install']);
    if (code === 0) {
      this.host.log('model installed; restarting the server');
      await this.restart();
    }
  }

  private setState(state: ServerState, message: string): void {
    this.state = state;
    this.message = message;
    this.render();
  }

  private render(automatic = this.automatic()): void {
    const view = presentStatus(this.state, this.message, automatic);
    this.host.setStatus(view.text, view.tooltip, view.severity);
  }
}
