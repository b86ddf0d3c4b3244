/**
 * The server's stderr in the log output channel at the level each line was logged at.
 * vscode-languageclient logs every stderr line as an error by default, so INFO lines
 * and llama.cpp's loading output showed up tagged `[error]`. Pure logic.
 */

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** `2026-12-02 10:00:00,123 LEVEL logger: message`, the server's log format. */
const RECORD = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) (.*)$/;

const LEVELS: Record<string, LogLevel> = {
  DEBUG: 'debug', INFO: 'info', WARNING: 'warn', ERROR: 'error', CRITICAL: 'error',
};

export interface LogLine {
  level: LogLevel;
  text: string;
}

/**
 * Classifies the lines of one stream: a log record at its own level (its timestamp
 * dropped, the channel adds one), any other line (a traceback's lines, a C library's
 * output) at the level of the record it follows, `info` before the first record.
 */
export class LineClassifier {
  private last: LogLevel = 'info';

  classify(line: string): LogLine {
    const match = RECORD.exec(line);
    if (match) {
      this.last = LEVELS[match[1]];
      return { level: this.last, text: match[2] };
    }
    return { level: this.last, text: line };
  }
}
