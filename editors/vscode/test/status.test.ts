import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { parseStatus, presentStatus } from '../src/status';

test('parseStatus accepts the contract states', () => {
  for (const state of ['loading', 'ready', 'indexing', 'error', 'disabled']) {
    assert.deepEqual(parseStatus({ state, message: 'm' }), { state, message: 'm' });
  }
});

test('parseStatus turns garbage into an error state', () => {
  assert.deepEqual(parseStatus({ state: 'weird' }), { state: 'error', message: 'unknown status "weird"' });
  assert.deepEqual(parseStatus(undefined), { state: 'error', message: 'unknown status undefined' });
  assert.deepEqual(parseStatus({ state: 'ready' }), { state: 'ready', message: '' });
});

test('loading and indexing spin, indexing shows its progress', () => {
  assert.match(presentStatus('loading', 'qwen2.5-coder-0.5b', true).text, /~spin/);
  const indexing = presentStatus('indexing', '120/400 files', true);
  assert.match(indexing.text, /~spin\) SLM 120\/400 files$/);
  assert.match(indexing.tooltip, /indexing the workspace — 120\/400 files/);
});

test('errors are shown with error severity and the message in the tooltip', () => {
  const view = presentStatus('error', 'model file missing: run slm-lsp model install', true);
  assert.equal(view.severity, 'error');
  assert.match(view.text, /\$\(error\)/);
  assert.match(view.tooltip, /model file missing/);
});

test('ready shows whether automatic suggestions are on', () => {
  const on = presentStatus('ready', '', true);
  const off = presentStatus('ready', '', false);
  assert.notEqual(on.text, off.text);
  assert.match(on.tooltip, /Click to turn them off/);
  assert.match(off.tooltip, /Click to turn them on/);
});

test('long indexing messages are shortened', () => {
  const view = presentStatus('indexing', 'x'.repeat(100), true);
  assert.ok(view.text.length < 50);
  assert.ok(view.text.endsWith('…'));
});
