import type { Readable } from 'node:stream';
import type { Client } from 'pg';
import { failure } from './errors';
import { errorText } from '../common/failures';

/**
 * A plain SQL dump executed without psql: statements go to the server over the protocol (where a
 * backslash is a syntax error, never a shell or a reconnect) and COPY ... FROM stdin data through
 * the COPY sub-protocol. psql meta-commands are refused before anything runs after them, except
 * pg_dump's own `\restrict` / `\unrestrict` markers, which only guard psql and are skipped.
 */

type LexState = 'code' | 'quote' | 'escape-quote' | 'identifier' | 'dollar' | 'line-comment' | 'block-comment';

const dumpMarker = /^\\(un)?restrict [A-Za-z0-9]+\r?$/;
const copyFromStdin = /^COPY\b[\s\S]*\bFROM\s+STDIN\b/i;
/**
 * Statements a non-superuser may not be allowed to run: extensions, and grants on system catalog
 * objects (pg_dump keeps e.g. GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO runbook_worker).
 * Tried under a savepoint, skipped on a privilege error.
 */
const skippableStatement = /^(CREATE\s+EXTENSION|COMMENT\s+ON\s+EXTENSION)\b|^(GRANT|REVOKE)\b[^;]*?\bON\s+(FUNCTION|TABLE)\s+pg_catalog\./i;
const skippableCodes = new Set(['42501', '42704', '0A000']);

/** Splits SQL text into statements as psql would (`;` outside literals, comments and parentheses); refuses meta-commands. */
export class StatementSplitter {
  private state: LexState = 'code';
  private dollarTag = '';
  private depth = 0;
  private commentDepth = 0;
  private current = '';

  /** Feeds one line (with its newline); returns the statements it completed, each with the rest of the line after it. */
  feed(line: string, lineNumber: number): Array<{ statement: string; rest: string }> {
    const done: Array<{ statement: string; rest: string }> = [];
    if (line.includes('\0')) throw failure('InvalidInput', `line ${lineNumber}: a NUL byte; not an SQL dump`);
    let i = 0;
    while (i < line.length) {
      const c = line[i]!;
      const next = line[i + 1] ?? '';
      let take = 1;
      switch (this.state) {
        case 'code':
          if (c === '\\') throw metaCommand(line.slice(i), lineNumber);
          if (c === "'") this.state = /[Ee]$/.test(this.current) && !/[A-Za-z0-9_$]{2}$/.test(this.current) ? 'escape-quote' : 'quote';
          else if (c === '"') this.state = 'identifier';
          else if (c === '-' && next === '-') this.state = 'line-comment';
          else if (c === '/' && next === '*') [this.state, this.commentDepth, take] = ['block-comment', 1, 2];
          else if (c === '$' && !/[A-Za-z0-9_$]$/.test(this.current)) {
            const tag = /^\$([A-Za-z_\u0080-\uffff][A-Za-z_0-9\u0080-\uffff]*)?\$/.exec(line.slice(i));
            if (tag) [this.state, this.dollarTag, take] = ['dollar', tag[0], tag[0].length];
          } else if (c === '(') this.depth++;
          else if (c === ')') this.depth = Math.max(0, this.depth - 1);
          else if (c === ';' && this.depth === 0) {
            done.push({ statement: `${this.current};`, rest: line.slice(i + 1) });
            this.current = '';
            i++;
            continue;
          }
          break;
        case 'quote':
          if (c === "'") this.state = next === "'" ? 'quote' : 'code';
          if (c === "'" && next === "'") take = 2;
          // With standard_conforming_strings off, \' would not end the string: refused so both readings agree.
          if (c === '\\' && next === "'") throw failure('InvalidInput', `line ${lineNumber}: a backslash before a quote in a string literal is ambiguous; refused`);
          break;
        case 'escape-quote':
          if (c === '\\') take = 2;
          else if (c === "'") [this.state, take] = next === "'" ? ['escape-quote', 2] : ['code', 1];
          break;
        case 'identifier':
          if (c === '"') [this.state, take] = next === '"' ? ['identifier', 2] : ['code', 1];
          break;
        case 'dollar':
          if (line.startsWith(this.dollarTag, i)) [this.state, take] = ['code', this.dollarTag.length];
          break;
        case 'line-comment':
          if (c === '\n') this.state = 'code';
          break;
        case 'block-comment':
          if (c === '/' && next === '*') [this.commentDepth, take] = [this.commentDepth + 1, 2];
          else if (c === '*' && next === '/') [this.commentDepth, take] = [this.commentDepth - 1, 2];
          if (this.commentDepth === 0) this.state = 'code';
          break;
      }
      this.current += line.slice(i, i + take);
      i += take;
    }
    return done;
  }

  /** Whether a line can start a meta-command here (nothing pending but whitespace and comments). */
  atStatementStart(): boolean {
    return this.state === 'code' && stripComments(this.current).trim() === '';
  }

  /** What is left at the end of the dump: only whitespace and comments are fine. */
  leftover(): string {
    return this.state === 'code' || this.state === 'line-comment' ? stripComments(this.current).trim() : this.current.trim();
  }
}

function stripComments(text: string): string {
  return text.replace(/--[^\n]*(\n|$)/g, ' ').replace(/\/\*[\s\S]*?\*\//g, ' ');
}

function metaCommand(text: string, lineNumber: number) {
  const command = /^\\[^\s]*/.exec(text)?.[0] ?? '\\';
  return failure('Refused', `line ${lineNumber}: psql meta-command ${command.slice(0, 20)} refused; a restore drill runs SQL only (a backup containing it may be tampered with)`);
}

/** Lines of a byte stream, each with its newline, as bytes (COPY data is passed on unchanged). */
async function* lines(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of source) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let start = 0;
    for (let nl = pending.indexOf(10); nl !== -1; nl = pending.indexOf(10, start)) {
      yield pending.subarray(start, nl + 1);
      start = nl + 1;
    }
    pending = pending.subarray(start);
  }
  if (pending.length) yield pending;
}

/** COPY ... FROM STDIN through node-postgres: the statement, then the data as CopyData messages. */
class CopyFromStdin {
  private error: unknown;
  private done!: (err?: unknown) => void;
  readonly finished = new Promise<void>((resolve, reject) => (this.done = (err) => (err ? reject(err) : resolve())));
  constructor(
    private readonly text: string,
    private readonly data: AsyncIterable<Buffer>,
  ) {}
  submit(connection: { query(text: string): void }): void {
    connection.query(this.text);
  }
  handleCopyInResponse(connection: { sendCopyFromChunk(b: Buffer): void; endCopyFrom(): void; sendCopyFail(m: string): void }): void {
    void (async () => {
      try {
        for await (const chunk of this.data) if (!this.error) connection.sendCopyFromChunk(chunk);
        connection.endCopyFrom();
      } catch (err) {
        connection.sendCopyFail(errorText(err));
        this.error ??= err;
      }
    })();
  }
  /** node-postgres hands an error to the query and forgets it: ReadyForQuery will not reach us, so this settles. */
  handleError(err: unknown): void {
    this.error ??= err;
    this.done(err);
  }
  handleReadyForQuery(): void {
    this.done(this.error);
  }
  handleCommandComplete(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyData(): void {}
}

export interface DumpExecution {
  statements: number;
  /** Statements a non-superuser may not run (extensions, grants on catalog objects), skipped with the server's reason. */
  skipped: string[];
}

/**
 * Runs a plain dump in one transaction on `client` (connected to the scratch database as the drill
 * role). Nothing is sent after a refused line; the caller drops the database.
 */
export async function executePlainDump(client: Client, source: Readable, onProgress: () => void): Promise<DumpExecution> {
  const splitter = new StatementSplitter();
  const reader = lines(source)[Symbol.asyncIterator]();
  const result: DumpExecution = { statements: 0, skipped: [] };
  let batch: string[] = [];
  let lineNumber = 0;
  const flush = async () => {
    if (batch.length) await client.query(batch.join('\n'));
    batch = [];
  };
  await client.query('BEGIN');
  for (let next = await reader.next(); !next.done; next = await reader.next()) {
    lineNumber++;
    const text = next.value.toString('utf8');
    if (splitter.atStatementStart() && dumpMarker.test(text.replace(/\n$/, ''))) continue;
    for (const { statement, rest } of splitter.feed(text, lineNumber)) {
      const sql = stripComments(statement).trim();
      result.statements++;
      if (skippableStatement.test(sql)) {
        await flush();
        await runSkippable(client, statement, sql, result.skipped);
      } else if (copyFromStdin.test(sql)) {
        if (rest.trim()) throw failure('InvalidInput', `line ${lineNumber}: text after COPY ... FROM stdin on the same line`);
        await flush();
        const data = copyData(reader, () => lineNumber++, lineNumber);
        const copy = new CopyFromStdin(statement, data);
        client.query(copy as never);
        await copy.finished;
      } else {
        batch.push(statement);
        if (batch.length >= 200) await flush();
      }
      onProgress();
    }
  }
  if (splitter.leftover()) throw failure('InvalidInput', `the dump ends inside a statement or literal (line ${lineNumber})`);
  await flush();
  await client.query('COMMIT');
  return result;
}

/** The data lines of one COPY up to its `\.` line (not passed on); the end of the dump ends it too. */
async function* copyData(reader: AsyncIterator<Buffer>, counted: () => void, startLine: number): AsyncGenerator<Buffer> {
  for (let next = await reader.next(); !next.done; next = await reader.next()) {
    counted();
    if (/^\\\.\r?\n?$/.test(next.value.toString('latin1'))) return;
    yield next.value;
  }
  throw failure('InvalidInput', `COPY data from line ${startLine} has no \\. terminator`);
}

async function runSkippable(client: Client, statement: string, sql: string, skipped: string[]): Promise<void> {
  await client.query('SAVEPOINT drill_extension');
  try {
    await client.query(statement);
    await client.query('RELEASE SAVEPOINT drill_extension');
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (!code || !skippableCodes.has(code)) throw err;
    await client.query('ROLLBACK TO SAVEPOINT drill_extension');
    skipped.push(`${sql.replace(/\s+/g, ' ').slice(0, 80)}: ${errorText(err)}`);
  }
}
