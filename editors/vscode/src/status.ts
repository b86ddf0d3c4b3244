/** What the status bar item shows for a server state. Pure logic. */

export type ServerState = 'starting' | 'loading' | 'ready' | 'indexing' | 'error' | 'disabled' | 'stopped';

export const SERVER_STATES: readonly ServerState[] = [
  'starting', 'loading', 'ready', 'indexing', 'error', 'disabled', 'stopped',
];

export interface StatusParams {
  state?: unknown;
  message?: unknown;
}

export interface StatusPresentation {
  text: string;
  tooltip: string;
  severity: 'normal' | 'warning' | 'error';
}

/** Validates the params of the `slm/status` notification. */
export function parseStatus(params: StatusParams | undefined): { state: ServerState; message: string } {
  const state = typeof params?.state === 'string' && (SERVER_STATES as readonly string[]).includes(params.state)
    ? params.state as ServerState
    : 'error';
  const message = typeof params?.message === 'string'
    ? params.message
    : state === 'error' && params?.state !== 'error' ? `unknown status ${JSON.stringify(params?.state)}` : '';
  return { state, message };
}

const ICONS: Record<ServerState, string> = {
  starting: '$(loading~spin)',
  loading: '$(loading~spin)',
  ready: '$(sparkle)',
  indexing: '$(sync~spin)',
  error: '$(error)',
  disabled: '$(circle-slash)',
  stopped: '$(debug-disconnect)',
};

const LABELS: Record<ServerState, string> = {
  starting: 'starting the server',
  loading: 'loading the model',
  ready: 'ready',
  indexing: 'indexing the workspace',
  error: 'error',
  disabled: 'disabled',
  stopped: 'server stopped',
};

/** Status bar text, tooltip and severity. */
export function presentStatus(state: ServerState, message: string, automatic: boolean): StatusPresentation {
  let text = `${ICONS[state]} SLM`;
  if (state === 'indexing' && message) {
    text += ` ${shorten(message, 24)}`;
  } else if (state === 'ready' && !automatic) {
    text = '$(circle-outline) SLM';
  }
  const lines = [`slm-lsp: ${LABELS[state]}${message ? ` — ${message}` : ''}`];
  lines.push(automatic
    ? 'Automatic suggestions are on. Click to turn them off.'
    : 'Automatic suggestions are off (Alt+\\ asks for one). Click to turn them on.');
  const severity = state === 'error' ? 'error' : state === 'stopped' ? 'warning' : 'normal';
  return { text, tooltip: lines.join('\n'), severity };
}

function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
