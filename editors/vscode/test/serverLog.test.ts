import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { LineClassifier } from '../src/serverLog';

test('server log records keep their level, without the timestamp', () => {
  const c = new LineClassifier();
  assert.deepEqual(c.classify('2026-12-02 10:00:00,123 INFO slm_lsp.server: ready'),
    { level: 'info', text: 'slm_lsp.server: ready' });
  assert.deepEqual(c.classify('2026-12-02 10:00:01,5 WARNING slm_lsp.workspace: slow'),
    { level: 'warn', text: 'slm_lsp.workspace: slow' });
  assert.equal(c.classify('2026-12-02 10:00:02,0 DEBUG x: y').level, 'debug');
  assert.equal(c.classify('2026-12-02 10:00:02,0 CRITICAL x: y').level, 'error');
});

test('other lines take the level of the record they follow, info before any', () => {
  const c = new LineClassifier();
  assert.equal(c.classify('llama_model_loader: loaded meta data').level, 'info');
  c.classify('2026-12-02 10:00:00,123 ERROR slm_lsp.features: failed');
  assert.deepEqual(c.classify('Traceback (most recent call last):'),
    { level: 'error', text: 'Traceback (most recent call last):' });
  c.classify('2026-12-02 10:00:03,1 INFO slm_lsp: back');
  assert.equal(c.classify('  plain').level, 'info');
});
