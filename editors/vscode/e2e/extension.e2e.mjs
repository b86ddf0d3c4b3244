// End to end: the packaged extension in a real VS Code (code-server 4.100.3) in Debian's
// Chromium, with the real `slm-lsp serve` and the real default model, on a copy of
// examples/sample whose line 51 is cut back to its indentation.
//
// Run by tests/editors/test_vscode_e2e.py (which provisions and builds first), or by hand:
//   SLM_E2E_SERVER=.venv/bin/slm-lsp SLM_E2E_MODEL=<gguf> SLM_E2E_VSIX=<vsix> \
//     node --test editors/vscode/e2e/extension.e2e.mjs
// Every test leaves a screenshot in results/ (SLM_E2E_RESULTS), pass or fail, and the
// suite writes results/e2e.json with what it measured.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  editorLine, ghostText, goTo, hoverText, logTails, notificationTexts, openFile, openWorkbench,
  sleep, startCodeServer, statusItem, waitFor,
} from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..', '..');
const RESULTS = process.env.SLM_E2E_RESULTS || path.join(HERE, 'results');
const SERVER = required('SLM_E2E_SERVER');
const MODEL = required('SLM_E2E_MODEL');
const VSIX = required('SLM_E2E_VSIX');

const FILE = 'inventory.py';
const MASKED = 51;  // "            total += unit_price(item.sku) * item.quantity", cut to its indentation
const INDENT = '            ';
const TYPED = 'total += ';
/** Time to the first ghost text at a cold place: the request timeout plus the late announcement. */
const FIRST_SUGGESTION_MS = 45_000;
const HOVER_MS = 90_000;

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set (see the header of ${path.basename(fileURLToPath(import.meta.url))})`);
  }
  return value;
}

const run = path.join(RESULTS, 'run');
const workspace = path.join(run, 'workspace');
const measured = {};
let server;
let bench;
let page;

function settingsFor(overrides = {}) {
  return {
    'slm.serverPath': SERVER,
    'slm.model.path': MODEL,
    'slm.logLevel': 'info',
    // The editor's own word suggestions and autosave would change what the tests see.
    'editor.quickSuggestions': { other: false, comments: false, strings: false },
    'editor.suggestOnTriggerCharacters': false,
    'editor.wordBasedSuggestions': 'off',
    'files.autoSave': 'off',
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
    'git.enabled': false,
    'git.openRepositoryInParentFolders': 'never',
    ...overrides,
  };
}

function shot(name) {
  return page?.screenshot({ path: path.join(RESULTS, `${name.replace(/[^a-z0-9]+/gi, '-')}.png`) })
    .catch(() => {});
}

/** A test that saves a screenshot named after it, whether it passes or fails. */
function step(name, body) {
  test(name, async () => {
    try {
      await body();
    } finally {
      await shot(name);
    }
  });
}

function lineOnDisk(line) {
  return fs.readFileSync(path.join(workspace, FILE), 'utf8').split('\n')[line - 1];
}

async function save() {
  const before = fs.statSync(path.join(workspace, FILE)).mtimeMs;
  await page.keyboard.press('Control+S');
  await waitFor(() => fs.statSync(path.join(workspace, FILE)).mtimeMs !== before, 10_000);
}

/** Cursor at the end of the masked line with `TYPED` typed (undoing earlier edits there). */
async function atMaskedLine() {
  await goTo(page, MASKED);
  await page.keyboard.press('End');
  await page.keyboard.press('Shift+Home');
  await page.keyboard.press('Shift+Home');  // the first press stops at the indentation
  await page.keyboard.type(INDENT);
  await page.keyboard.type(TYPED, { delay: 80 });
}

before(async () => {
  fs.rmSync(RESULTS, { recursive: true, force: true });
  fs.mkdirSync(workspace, { recursive: true });
  fs.cpSync(path.join(REPO, 'examples', 'sample'), workspace, { recursive: true });
  fs.mkdirSync(path.join(workspace, '.git'));  // a repository root, as users have
  const source = path.join(workspace, FILE);
  const lines = fs.readFileSync(source, 'utf8').split('\n');
  assert.match(lines[MASKED - 1], /^ {12}total \+= unit_price\(item\.sku\)/);
  lines[MASKED - 1] = INDENT;
  fs.writeFileSync(source, lines.join('\n'));
  server = await startCodeServer({ dir: run, vsix: VSIX, settings: settingsFor(), workspace });
  bench = await openWorkbench(server.url);
  page = bench.page;
});

after(async () => {
  fs.writeFileSync(path.join(RESULTS, 'e2e.json'), `${JSON.stringify(measured, null, 2)}\n`);
  await bench?.browser.close();
  server?.stop();
});

step('status bar reaches ready', async () => {
  const started = Date.now();
  await openFile(page, FILE);
  const ready = await waitFor(async () => (await statusItem(page)).state === 'ready', 120_000, 250);
  const item = await statusItem(page);
  assert.ok(ready, `status bar item: ${JSON.stringify(item)}\n${logTails(run)}`);
  assert.equal(item.text, 'SLM');
  assert.match(item.label, /slm-lsp: ready/);
  measured.readyMs = Date.now() - started;
});

step('typing shows ghost text and Tab inserts it', async () => {
  await atMaskedLine();
  const typed = Date.now();
  const ghost = await waitFor(() => ghostText(page), FIRST_SUGGESTION_MS, 100);
  measured.firstGhostTextMs = Date.now() - typed;
  assert.ok(ghost, `no ghost text within ${FIRST_SUGGESTION_MS} ms`);
  measured.ghostText = ghost;
  await shot('ghost-text');
  const shown = await editorLine(page, MASKED);
  assert.equal(shown, INDENT + TYPED, 'ghost text is not part of the line before it is accepted');
  await page.keyboard.press('Tab');
  await waitFor(async () => (await editorLine(page, MASKED)) !== shown, 5_000);
  await save();
  const accepted = lineOnDisk(MASKED);
  measured.accepted = accepted;
  assert.ok(accepted.startsWith(INDENT + TYPED + ghost.split('\n')[0].trimEnd()),
    `line ${MASKED} on disk: ${JSON.stringify(accepted)}; ghost text was ${JSON.stringify(ghost)}`);
  assert.ok(accepted.length > (INDENT + TYPED).length);
});

step('accept word takes one word and Escape dismisses the rest', async () => {
  await atMaskedLine();
  const ghost = await waitFor(() => ghostText(page), FIRST_SUGGESTION_MS, 100);
  assert.ok(ghost, 'no ghost text at the place that had one');
  await page.keyboard.press('Control+ArrowRight');  // editor.action.inlineSuggest.acceptNextWord
  const partly = await waitFor(async () => {
    const line = await editorLine(page, MASKED);
    return line !== INDENT + TYPED ? line : '';
  }, 5_000);
  assert.ok(partly, 'accept word changed nothing');
  const word = partly.slice((INDENT + TYPED).length);
  assert.ok(ghost.startsWith(word) && word.length < ghost.trimEnd().length,
    `accepted ${JSON.stringify(word)} of ${JSON.stringify(ghost)}`);
  const rest = await ghostText(page);
  assert.ok(rest, 'the rest of the suggestion is no longer shown');
  await page.keyboard.press('Escape');
  assert.ok(await waitFor(async () => !(await ghostText(page)), 5_000), 'Escape left the ghost text');
  assert.equal(await editorLine(page, MASKED), partly, 'Escape changed the line');
});

step('hover on a repository function shows its explanation', async () => {
  await page.keyboard.press('Escape');
  await goTo(page, MASKED + 1, 17);  // "        return apply_discount(...)": inside the name
  const started = Date.now();
  await page.keyboard.press('Control+K');
  await page.keyboard.press('Control+I');
  const text = await waitFor(async () => {
    const shown = await hoverText(page);
    return /apply_discount/.test(shown) && !/Loading/.test(shown) ? shown : '';
  }, HOVER_MS, 250);
  measured.hoverMs = Date.now() - started;
  measured.hover = text;
  assert.ok(text, `hover: ${JSON.stringify(await hoverText(page))}`);
  assert.match(text, /pricing\.py/, 'the hover names where apply_discount is defined');
  assert.doesNotMatch(text, /```|\*\*|<\/?[a-z]+>/, 'Markdown is rendered, not shown as source');
});

step('Explain selection opens its answer', async () => {
  await page.keyboard.press('Escape');
  await goTo(page, 47);
  await page.keyboard.press('Home');
  for (let i = 0; i < 6; i += 1) {
    await page.keyboard.press('Shift+ArrowDown');
  }
  await page.keyboard.press('Control+.');
  const focused = page.locator('.action-widget .monaco-list-row.focused');
  await focused.first().waitFor({ timeout: 15_000 });
  for (let i = 0; i < 10 && !/Explain selection/.test(await focused.first().getAttribute('aria-label')); i += 1) {
    await page.keyboard.press('ArrowDown');
  }
  assert.match(await focused.first().getAttribute('aria-label'), /Explain selection/);
  const started = Date.now();
  await page.keyboard.press('Enter');
  const tab = page.locator('.tab.active', { hasText: /\.md/ });
  await tab.waitFor({ timeout: HOVER_MS });
  measured.explainMs = Date.now() - started;
  const body = await waitFor(async () => (await page.locator('.editor-group-container.active .view-lines')
    .innerText().catch(() => '')).trim(), 10_000);
  measured.explanation = body;
  assert.ok(body.length > 40, `explanation document: ${JSON.stringify(body)}`);
  await shot('explanation');
  await page.keyboard.press('Control+W');  // back to inventory.py
});

step('status bar toggle stops automatic suggestions', async () => {
  await page.locator('.editor-group-container.active').waitFor();
  await (await statusItem(page)).locator.click();
  assert.ok(await waitFor(async () => (await statusItem(page)).state === 'off', 10_000),
    `after the click: ${JSON.stringify(await statusItem(page))}`);
  // A new place, so no earlier answer is cached for it.
  await goTo(page, 49);
  await page.keyboard.press('End');
  await page.keyboard.press('Enter');
  await page.keyboard.type('count = ', { delay: 80 });
  await sleep(12_000);
  assert.equal(await ghostText(page), '', 'ghost text while automatic suggestions are off');
  // Asking explicitly still works.
  await page.keyboard.press('Alt+Backslash');
  assert.ok(await waitFor(() => ghostText(page), FIRST_SUGGESTION_MS, 100), 'Alt+\\ gave no suggestion');
  await page.keyboard.press('Escape');
  await (await statusItem(page)).locator.click();
  assert.ok(await waitFor(async () => (await statusItem(page)).state === 'ready', 10_000));
});

step('a server that cannot start says what to fix', async () => {
  // A user whose slm.serverPath points nowhere, from the first start of the editor.
  await bench.browser.close();
  server.stop();
  const missing = path.join(run, 'no-such-dir', 'slm-lsp');
  const dir = path.join(RESULTS, 'run-bad-path');
  fs.mkdirSync(dir, { recursive: true });
  server = await startCodeServer({ dir, vsix: VSIX, settings: settingsFor({ 'slm.serverPath': missing }), workspace });
  bench = await openWorkbench(server.url);
  page = bench.page;
  await openFile(page, FILE);  // the extension starts with the first Python file
  const message = await waitFor(async () => (await notificationTexts(page)).find((m) => m.includes(missing)),
    30_000, 250);
  assert.ok(message, `notifications: ${JSON.stringify(await notificationTexts(page))}`);
  assert.match(message, /slm\.serverPath/);
  measured.badPathMessage = message;
  const actions = await page.locator('.notifications-toasts .notification-list-item-buttons-container .monaco-button')
    .allInnerTexts();
  assert.ok(actions.includes('Open Settings'), `the notification's actions: ${JSON.stringify(actions)}`);
  assert.ok(await waitFor(async () => (await statusItem(page)).state === 'error', 10_000),
    `status bar: ${JSON.stringify(await statusItem(page))}`);
});
