/** Which cursor moves are reported to the server (`slm/cursor`); no `vscode` import, so it is unit tested. */

/** The parts of VS Code's `TextEditorSelectionChangeEvent` that matter here. */
export interface SelectionChange {
  readonly selections: readonly { readonly isEmpty: boolean; readonly active: { line: number; character: number } }[];
  readonly textEditor: { readonly document: { readonly uri: { readonly scheme: string; toString(): string } } };
}

export interface CursorAt {
  uri: string;
  line: number;
  character: number;
}

/**
 * The cursor after a selection change, when there is one plain cursor in a document the
 * server sees. Edits move the cursor too (the event's `kind` is undefined for them and for
 * jumps such as Go to Definition alike); the debounce and the server skip those cheaply.
 */
export function restingCursor(event: SelectionChange): CursorAt | undefined {
  const scheme = event.textEditor.document.uri.scheme;
  if (event.selections.length !== 1 || !event.selections[0].isEmpty || (scheme !== 'file' && scheme !== 'untitled')) {
    return undefined;
  }
  const { line, character } = event.selections[0].active;
  return { uri: event.textEditor.document.uri.toString(), line, character };
}
