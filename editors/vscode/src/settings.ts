/**
 * The settings the extension sends to the server: every `slm.*` key contributed in
 * package.json except the client-only ones, as the nested camelCase `slm` object the
 * server parses. Pure logic (values come from a lookup function).
 */

/** Settings read by the extension itself; never sent to the server. */
export const CLIENT_ONLY_KEYS: readonly string[] = [
  'slm.enable',
  'slm.serverPath',
  'slm.venv',
  'slm.automaticSuggestions',
];

/** Keys that need a server restart (not just a configuration change) when they change. */
export const RESTART_KEYS: readonly string[] = ['slm.enable', 'slm.serverPath', 'slm.venv'];

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** Server keys from package.json's `contributes.configuration` (object or array form). */
export function serverKeysFromManifest(manifest: unknown): string[] {
  const contributes = (manifest as { contributes?: { configuration?: unknown } })?.contributes;
  const config = contributes?.configuration;
  const sections = Array.isArray(config) ? config : config ? [config] : [];
  const keys: string[] = [];
  for (const section of sections) {
    const properties = (section as { properties?: Record<string, unknown> }).properties ?? {};
    for (const key of Object.keys(properties)) {
      if (key.startsWith('slm.') && !CLIENT_ONLY_KEYS.includes(key)) {
        keys.push(key);
      }
    }
  }
  return keys;
}

/**
 * Builds `{model: {name: ...}, completion: {...}, ...}` (without the leading `slm`) from
 * flat keys such as `slm.completion.maxTokens`. Undefined values are left out, so the
 * server falls back to its own defaults.
 */
export function collectServerSettings(keys: readonly string[], lookup: (key: string) => unknown): JsonObject {
  const out: JsonObject = {};
  for (const key of keys) {
    const value = lookup(key);
    if (value === undefined) {
      continue;
    }
    const parts = key.split('.').slice(1);
    let node = out;
    for (const part of parts.slice(0, -1)) {
      const next = node[part];
      if (next === undefined || next === null || typeof next !== 'object' || Array.isArray(next)) {
        node[part] = {};
      }
      node = node[part] as JsonObject;
    }
    node[parts[parts.length - 1]] = value as Json;
  }
  return out;
}

/** The sub-object at a dotted path below `slm` (`slm` itself gives the whole object). */
export function sectionOf(settings: JsonObject, section: string): Json | undefined {
  if (section === 'slm') {
    return settings;
  }
  if (!section.startsWith('slm.')) {
    return undefined;
  }
  let node: Json | undefined = settings;
  for (const part of section.split('.').slice(1)) {
    if (node === null || typeof node !== 'object' || Array.isArray(node)) {
      return undefined;
    }
    node = (node as JsonObject)[part];
  }
  return node;
}

/**
 * Answers a `workspace/configuration` request: items asking for `slm` (or below) get the
 * collected server settings; other items keep what the default handler produced.
 */
export function answerConfiguration(
  items: readonly { section?: string }[],
  defaults: readonly unknown[],
  settings: JsonObject,
): unknown[] {
  return items.map((item, i) => {
    const section = item.section ?? '';
    if (section === 'slm' || section.startsWith('slm.')) {
      const value = sectionOf(settings, section);
      return value === undefined ? null : value;
    }
    return i < defaults.length ? defaults[i] : null;
  });
}

/** Which kind of reaction a configuration change needs. */
export function changeImpact(affects: (key: string) => boolean, serverKeys: readonly string[]): {
  restart: boolean;
  notify: boolean;
  status: boolean;
} {
  return {
    restart: RESTART_KEYS.some(affects),
    notify: serverKeys.some(affects),
    status: affects('slm.automaticSuggestions'),
  };
}

/** VS Code's InlineCompletionTriggerKind: 0 = Invoke (explicit), 1 = Automatic. */
export const TRIGGER_INVOKE = 0;
export const TRIGGER_AUTOMATIC = 1;

/** Whether to forward an inline completion request to the server. */
export function shouldRequestInline(triggerKind: number, automaticSuggestions: boolean): boolean {
  return triggerKind === TRIGGER_INVOKE || automaticSuggestions;
}
