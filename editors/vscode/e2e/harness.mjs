// A real VS Code (code-server) in Debian's Chromium, driven by playwright-core: the
// pieces the end-to-end tests share. Everything a run writes goes under its `dir`.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CODE_SERVER = path.join(HERE, 'node_modules', '.bin', 'code-server');
const CHROMIUM = process.env.SLM_E2E_CHROMIUM || '/usr/bin/chromium';

/** A free TCP port on the loopback interface. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function environment(dir) {
  return {
    ...process.env,
    HOME: path.join(dir, 'home'),
    XDG_CONFIG_HOME: path.join(dir, 'config'),
    XDG_DATA_HOME: path.join(dir, 'data'),
    XDG_CACHE_HOME: path.join(dir, 'cache'),
    TMPDIR: path.join(dir, 'tmp'),
    SLM_LSP_HOME: path.join(dir, 'slm-lsp'),  // the server's index, caches and saved states
  };
}

/**
 * Starts code-server on a free loopback port with a fresh profile under `dir`, the
 * extension installed from `vsix` and `settings` as the user settings.
 */
export async function startCodeServer({ dir, vsix, settings, workspace }) {
  const env = environment(dir);
  for (const key of ['HOME', 'XDG_CONFIG_HOME', 'XDG_DATA_HOME', 'XDG_CACHE_HOME', 'TMPDIR', 'SLM_LSP_HOME']) {
    fs.mkdirSync(env[key], { recursive: true });
  }
  const userData = path.join(dir, 'user-data');
  const extensions = path.join(dir, 'extensions');
  // The user settings travel through the browser's workbench; the remote (Machine)
  // settings are read by code-server itself. A CI run once started the extension with
  // none of the user settings (status: no slm-lsp on PATH), so both hold them.
  for (const scope of ['User', 'Machine']) {
    fs.mkdirSync(path.join(userData, scope), { recursive: true });
    fs.writeFileSync(path.join(userData, scope, 'settings.json'), JSON.stringify(settings, null, 2));
  }
  const common = ['--user-data-dir', userData, '--extensions-dir', extensions];
  const install = spawnSync(CODE_SERVER, [...common, '--install-extension', vsix], { env, encoding: 'utf8' });
  if (install.status !== 0) {
    throw new Error(`installing ${vsix} failed: ${install.stdout}${install.stderr}`);
  }
  const port = await freePort();
  const log = fs.openSync(path.join(dir, 'code-server.log'), 'w');
  const child = spawn(CODE_SERVER, [
    ...common, '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-telemetry',
    '--disable-update-check', '--disable-workspace-trust', '--disable-getting-started-override',
    workspace,
  ], { env, stdio: ['ignore', log, log], detached: true });
  const url = `http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`code-server exited with ${child.exitCode}; see ${dir}/code-server.log`);
    }
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (response.ok) {
        return { url, stop: () => stopGroup(child) };
      }
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
  stopGroup(child);
  throw new Error('code-server did not start within 60 s');
}

/** The last `lines` lines of the extension's and the extension host's logs under `dir`. */
export function logTails(dir, lines = 40) {
  const logs = path.join(dir, 'user-data', 'logs');
  const found = [];
  const walk = (folder) => {
    for (const entry of fs.existsSync(folder) ? fs.readdirSync(folder, { withFileTypes: true }) : []) {
      const full = path.join(folder, entry.name);
      if (entry.isDirectory()) {
        walk(full);
      } else if (entry.name === 'slm-lsp.log' || entry.name === 'remoteexthost.log') {
        found.push(full);
      }
    }
  };
  walk(logs);
  return found.map((file) => {
    const text = fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
    return `--- ${path.relative(dir, file)}\n${text}`;
  }).join('\n');
}

function stopGroup(child) {
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    // already gone
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Chromium with a fresh profile, no network chatter, and a page at `url`. */
export async function openWorkbench(url) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
  // Extensions activate after the workbench shows; typing before that loses keystrokes.
  await page.waitForFunction(() => !document.querySelector('.statusbar')?.textContent?.includes('Activating Extensions'),
    null, { timeout: 60_000 });
  return { browser, page };
}

/** Presses ``key`` and waits for the quick input box it opens (Quick Open, Go to Line...). */
async function quickInput(page, key) {
  await page.keyboard.press(key);
  await page.waitForSelector('.quick-input-widget:not([style*="display: none"]) input');
}

/** Opens `relative` through Quick Open and waits for its editor. */
export async function openFile(page, relative) {
  await quickInput(page, 'Control+P');
  await page.keyboard.type(relative);
  await page.waitForSelector(`.quick-input-list .monaco-list-row[aria-label*="${path.basename(relative)}"]`);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`.tab.active[aria-label*="${path.basename(relative)}"]`);
  await page.waitForSelector('.monaco-editor.focused');
}

/** Moves the cursor to a 1-based line (and column) with Go to Line. */
export async function goTo(page, line, column) {
  await quickInput(page, 'Control+G');
  await page.keyboard.type(column ? `${line}:${column}` : String(line));
  await page.keyboard.press('Enter');
  await page.waitForSelector('.monaco-editor.focused');
}

/** Runs a command from the Command Palette by its label. */
export async function runCommand(page, label) {
  await quickInput(page, 'Control+Shift+P');
  await page.keyboard.type(label);
  await page.waitForSelector(`.quick-input-list .monaco-list-row[aria-label*="${label}"]`);
  await page.keyboard.press('Enter');
}

const STATE_ICONS = {
  'codicon-sparkle': 'ready', 'codicon-circle-outline': 'off', 'codicon-error': 'error',
  'codicon-loading': 'loading', 'codicon-sync': 'indexing', 'codicon-circle-slash': 'disabled',
  'codicon-debug-disconnect': 'stopped',
};

/**
 * The extension's status bar item: its state (from its icon: ready, off, error, loading,
 * indexing, disabled, stopped, or '' when absent), its visible text, its accessible label
 * and a locator to click it.
 */
export async function statusItem(page) {
  const locator = page.locator('.statusbar-item[id$="slm.status"]').first();
  if (!(await locator.count())) {
    return { state: '', text: '', label: '', locator };
  }
  const { classes, text, label } = await locator.evaluate((element) => ({
    classes: Array.from(element.querySelectorAll('.codicon')).flatMap((icon) => Array.from(icon.classList)),
    text: element.textContent.trim(),
    label: element.getAttribute('aria-label') ?? element.querySelector('[aria-label]')?.getAttribute('aria-label') ?? '',
  }));
  const icon = classes.find((name) => STATE_ICONS[name]);
  return { state: icon ? STATE_ICONS[icon] : 'unknown', text, label, locator };
}

const visible = (text) => text.replace(/\u00a0/g, ' ');

/** The ghost text currently shown in the active editor, or '' (lines joined by \n). */
export async function ghostText(page) {
  return visible(await page.evaluate(() => {
    const editor = document.querySelector('.editor-group-container.active .monaco-editor');
    if (!editor) {
      return '';
    }
    const inline = Array.from(editor.querySelectorAll('.ghost-text-decoration')).map((e) => e.textContent || '');
    const below = Array.from(editor.querySelectorAll('.ghost-text .view-line')).map((e) => e.textContent || '');
    return [inline.join(''), ...below].join('\n').replace(/\n+$/, '');
  }));
}

/**
 * The text of a 1-based line as the active editor shows it, without ghost text, or
 * undefined when that line is not rendered.
 */
export async function editorLine(page, line) {
  const text = await page.evaluate((wanted) => {
    const editor = document.querySelector('.editor-group-container.active .monaco-editor');
    if (!editor) {
      return undefined;
    }
    const number = Array.from(editor.querySelectorAll('.margin-view-overlays .line-numbers'))
      .find((e) => e.textContent.trim() === String(wanted));
    if (!number) {
      return undefined;
    }
    const top = number.closest('[style*="top"]')?.style.top;
    const view = Array.from(editor.querySelectorAll('.view-lines .view-line')).find((e) => e.style.top === top);
    if (!view) {
      return undefined;
    }
    const copy = view.cloneNode(true);
    copy.querySelectorAll('.ghost-text-decoration, .ghost-text-decoration-preview').forEach((e) => e.remove());
    return copy.textContent;
  }, line);
  return text === undefined ? undefined : visible(text);
}

/** The text of the hover widget, or ''. */
export async function hoverText(page) {
  return page.evaluate(() => Array.from(document.querySelectorAll('.monaco-hover:not(.hidden) .hover-contents'))
    .map((e) => e.innerText).join('\n').trim());
}

/** The messages of the notification toasts on screen. */
export async function notificationTexts(page) {
  return page.evaluate(() => Array.from(document.querySelectorAll('.notifications-toasts .notification-list-item-message'))
    .map((e) => e.textContent.trim()));
}

/** Polls `probe` until it returns a truthy value or `ms` pass; returns its last value. */
export async function waitFor(probe, ms, every = 100) {
  const deadline = Date.now() + ms;
  let value = await probe();
  while (!value && Date.now() < deadline) {
    await sleep(every);
    value = await probe();
  }
  return value;
}
