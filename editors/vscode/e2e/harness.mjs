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
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  fs.writeFileSync(path.join(userData, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
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
export async function openWorkbench(url, dir) {
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
  return { browser, page, shot: (name) => page.screenshot({ path: path.join(dir, `${name}.png`) }) };
}

/** Opens `relative` through Quick Open and waits for its editor. */
export async function openFile(page, relative) {
  await page.keyboard.press('Control+P');
  await page.waitForSelector('.quick-input-widget:not([style*="display: none"]) input');
  await page.keyboard.type(relative);
  await page.waitForSelector(`.quick-input-list .monaco-list-row[aria-label*="${path.basename(relative)}"]`);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`.tab.active[aria-label*="${path.basename(relative)}"]`);
  await page.waitForSelector('.monaco-editor.focused');
}

/** Moves the cursor to the end of a 1-based line (Go to Line, then End). */
export async function goToLineEnd(page, line) {
  await page.keyboard.press('Control+G');
  await page.waitForSelector('.quick-input-widget:not([style*="display: none"]) input');
  await page.keyboard.type(String(line));
  await page.keyboard.press('Enter');
  await page.keyboard.press('End');
}

/** Runs a command from the Command Palette by its label. */
export async function runCommand(page, label) {
  await page.keyboard.press('Control+Shift+P');
  await page.waitForSelector('.quick-input-widget:not([style*="display: none"]) input');
  await page.keyboard.type(label);
  await page.waitForSelector(`.quick-input-list .monaco-list-row[aria-label*="${label}"]`);
  await page.keyboard.press('Enter');
}

/** The text of the status bar item of the extension (its name is `slm-lsp`). */
export async function statusText(page) {
  const item = page.locator('.statusbar-item[id*="slm"], .statusbar-item:has-text("SLM")').first();
  return (await item.count()) ? (await item.innerText()).trim() : '';
}

/** The ghost text currently shown in the editor, or ''. */
export async function ghostText(page) {
  return page.evaluate(() => Array.from(document.querySelectorAll('.ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text'))
    .map((e) => e.textContent || '').join(''));
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
