import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { SelectionChange, restingCursor } from '../src/cursor';

function change(scheme: string, ...cursors: [number, number, boolean][]): SelectionChange {
  return {
    selections: cursors.map(([line, character, isEmpty]) => ({ isEmpty, active: { line, character } })),
    textEditor: { document: { uri: { scheme, toString: () => `${scheme}:///proj/a.py` } } },
  };
}

test('one plain cursor in a file or an untitled buffer is reported', () => {
  assert.deepEqual(restingCursor(change('file', [12, 4, true])), { uri: 'file:///proj/a.py', line: 12, character: 4 });
  assert.deepEqual(restingCursor(change('untitled', [0, 0, true])), { uri: 'untitled:///proj/a.py', line: 0, character: 0 });
});

test('selections, several cursors and other schemes are not', () => {
  assert.equal(restingCursor(change('file', [12, 4, false])), undefined);
  assert.equal(restingCursor(change('file', [12, 4, true], [13, 4, true])), undefined);
  assert.equal(restingCursor(change('git', [12, 4, true])), undefined);
  assert.equal(restingCursor(change('output', [0, 0, true])), undefined);
  assert.equal(restingCursor(change('file')), undefined);
});
