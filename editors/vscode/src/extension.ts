import * as vscode from 'vscode';
import { COMMANDS, Controller } from './controller';
import { SelectionChange, restingCursor } from './cursor';
import { VscodeHost } from './vscodeHost';

let controller: Controller | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const host = new VscodeHost(context, COMMANDS.toggleSuggestions);
  const ctl = new Controller(host);
  controller = ctl;
  context.subscriptions.push(
    host,
    vscode.commands.registerCommand(COMMANDS.toggleSuggestions, () => ctl.toggleSuggestions()),
    vscode.commands.registerCommand(COMMANDS.reindex, () => ctl.reindex()),
    vscode.commands.registerCommand(COMMANDS.showLog, () => ctl.showLog()),
    vscode.commands.registerCommand(COMMANDS.installModel, () => ctl.installModel()),
    vscode.commands.registerCommand(COMMANDS.restart, () => ctl.restart()),
    vscode.workspace.onDidChangeConfiguration((event) => ctl.onConfigurationChanged((key) => event.affectsConfiguration(key))),
    vscode.window.onDidChangeTextEditorSelection((event) => cursorAt(ctl, event)),
    vscode.window.onDidChangeActiveTextEditor((editor) => {
      if (editor) {
        cursorAt(ctl, { selections: editor.selections, textEditor: editor });
      }
    }),
  );
  await ctl.start();
  const editor = vscode.window.activeTextEditor;
  if (editor) {  // the server warms it once the model has loaded
    cursorAt(ctl, { selections: editor.selections, textEditor: editor });
  }
}

function cursorAt(ctl: Controller, change: SelectionChange): void {
  const where = restingCursor(change);
  if (where) {
    ctl.onCursorMoved(where.uri, where.line, where.character);
  }
}

export async function deactivate(): Promise<void> {
  await controller?.stop();
  controller = undefined;
}
