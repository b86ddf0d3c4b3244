/**
 * Where the `slm-lsp` executable is: `slm.serverPath`, else `<slm.venv>/bin/slm-lsp`,
 * else `slm-lsp` on PATH, else `<workspace>/.venv/bin/slm-lsp`.
 *
 * Pure logic: the file system and environment come in as arguments so it runs in tests.
 */
import * as path from 'path';

export interface ResolveInput {
  /** `slm.serverPath` (may be empty). */
  serverPath: string;
  /** `slm.venv` (may be empty). */
  venv: string;
  /** First workspace folder, if any (for `${workspaceFolder}` and relative paths). */
  workspaceFolder?: string;
  home: string;
  platform: NodeJS.Platform;
  env: Record<string, string | undefined>;
  /** True when the path names an existing executable file. */
  isExecutable: (file: string) => boolean;
}

export type ServerSource = 'serverPath' | 'venv' | 'PATH' | 'workspace venv';

export interface ServerCommand {
  command: string;
  args: string[];
  source: ServerSource;
}

export interface ResolveError {
  error: string;
}

export const SERVE_ARGS = ['serve'];

function pathApi(platform: NodeJS.Platform): path.PlatformPath {
  return platform === 'win32' ? path.win32 : path.posix;
}

/** Expands `~`, `${userHome}`, `${workspaceFolder}` and `${env:NAME}`. */
export function expandVariables(value: string, input: ResolveInput): string {
  let out = value.trim();
  if (out === '~' || out.startsWith('~/') || out.startsWith('~\\')) {
    out = input.home + out.slice(1);
  }
  return out.replace(/\$\{(userHome|workspaceFolder|env:([^}]+))\}/g, (whole, name: string, envName?: string) => {
    if (name === 'userHome') {
      return input.home;
    }
    if (name === 'workspaceFolder') {
      return input.workspaceFolder ?? whole;
    }
    return input.env[envName ?? ''] ?? '';
  });
}

function absolute(file: string, input: ResolveInput): string {
  const p = pathApi(input.platform);
  if (p.isAbsolute(file) || !input.workspaceFolder) {
    return file;
  }
  return p.join(input.workspaceFolder, file);
}

/** `<venv>/bin/slm-lsp`, or `<venv>\Scripts\slm-lsp.exe` on Windows. */
export function venvExecutable(venv: string, platform: NodeJS.Platform): string {
  const p = pathApi(platform);
  return platform === 'win32' ? p.join(venv, 'Scripts', 'slm-lsp.exe') : p.join(venv, 'bin', 'slm-lsp');
}

/** Looks `name` up on PATH (with PATHEXT on Windows). */
export function whichOnPath(name: string, input: ResolveInput): string | undefined {
  const p = pathApi(input.platform);
  const win = input.platform === 'win32';
  const pathVar = (win ? input.env.Path ?? input.env.PATH : input.env.PATH) ?? '';
  const exts = win ? (input.env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';').filter(Boolean) : [''];
  for (const dir of pathVar.split(win ? ';' : ':')) {
    if (!dir) {
      continue;
    }
    for (const ext of exts) {
      const candidate = p.join(dir, name + ext.toLowerCase());
      if (input.isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}

export function resolveServerCommand(input: ResolveInput): ServerCommand | ResolveError {
  const serverPath = expandVariables(input.serverPath ?? '', input);
  if (serverPath) {
    const file = absolute(serverPath, input);
    if (!input.isExecutable(file)) {
      return { error: `slm.serverPath is set to ${file}, which is not an executable file.` };
    }
    return { command: file, args: [...SERVE_ARGS], source: 'serverPath' };
  }
  const venv = expandVariables(input.venv ?? '', input);
  if (venv) {
    const file = venvExecutable(absolute(venv, input), input.platform);
    if (!input.isExecutable(file)) {
      return {
        error: `slm.venv is set, but ${file} does not exist. Install slm-lsp into that environment ` +
          '(pip install slm-lsp) or fix the setting.',
      };
    }
    return { command: file, args: [...SERVE_ARGS], source: 'venv' };
  }
  const onPath = whichOnPath('slm-lsp', input);
  if (onPath) {
    return { command: onPath, args: [...SERVE_ARGS], source: 'PATH' };
  }
  if (input.workspaceFolder) {
    const local = venvExecutable(pathApi(input.platform).join(input.workspaceFolder, '.venv'), input.platform);
    if (input.isExecutable(local)) {
      return { command: local, args: [...SERVE_ARGS], source: 'workspace venv' };
    }
  }
  return {
    error: 'Could not find the slm-lsp executable on PATH. Install it (pip install slm-lsp), ' +
      'or set slm.serverPath or slm.venv.',
  };
}

export function isResolveError(value: ServerCommand | ResolveError): value is ResolveError {
  return (value as ResolveError).error !== undefined;
}
