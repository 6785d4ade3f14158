/**
 * Whether a statement text (from pg_stat_statements) may be given to EXPLAIN: only a single plain
 * SELECT, by a conservative reading of its tokens. This is the first guard; the second (the real
 * one) is where it runs: a READ ONLY transaction with a statement timeout, rolled back, and plain
 * EXPLAIN, which plans and never executes.
 */
export type Explainability = { explainable: true } | { explainable: false; reason: string };

/**
 * Functions known not to change anything (and not to reach outside the server). Anything else
 * called in a statement (a user function, dblink, lo_*, nextval, pg_terminate_backend, ...) keeps
 * it from being explained: planning may evaluate immutable functions, and we cannot prove a user
 * function's volatility label honest.
 */
const readOnlyFunctions = new Set(
  [
    'count',
    'sum',
    'avg',
    'min',
    'max',
    'array_agg',
    'string_agg',
    'json_agg',
    'jsonb_agg',
    'bool_and',
    'bool_or',
    'coalesce',
    'nullif',
    'greatest',
    'least',
    'lower',
    'upper',
    'length',
    'substr',
    'substring',
    'trim',
    'concat',
    'left',
    'right',
    'abs',
    'round',
    'floor',
    'ceil',
    'now',
    'date_trunc',
    'extract',
    'date_part',
    'to_char',
    'to_tsvector',
    'to_tsquery',
    'plainto_tsquery',
    'websearch_to_tsquery',
    'ts_rank',
    'row_number',
    'rank',
    'dense_rank',
    'lag',
    'lead',
    'pg_sleep',
  ].map((f) => f.toLowerCase()),
);

/** Words that take a parenthesis without being a function call. */
const syntaxBeforeParen = new Set(
  `select from where and or not in exists any all some as on join using over filter within values cast array row case when then else between like ilike is by limit offset having union intersect except lateral distinct numeric decimal varchar char timestamp timestamptz interval partition`.split(
    ' ',
  ),
);

/** Words that make a SELECT write, lock or be something else, anywhere outside literals and comments. */
const forbiddenWords = new Set([
  'insert',
  'update',
  'delete',
  'merge',
  'truncate',
  'into',
  'drop',
  'alter',
  'create',
  'grant',
  'revoke',
  'copy',
  'call',
  'do',
  'execute',
  'prepare',
  'vacuum',
  'analyze',
  'lock',
  'listen',
  'notify',
  'set',
  'reset',
  'share',
  'nowait',
]);

/**
 * The statement without comments, string literals and quoted identifiers (each replaced by a
 * space or a placeholder word), or a reason it cannot be read (an unterminated literal or comment:
 * a text cut by pg_stat_statements' or our own length limit).
 */
export function sqlSkeleton(text: string): { skeleton: string } | { reason: string } {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const next = text[i + 1];
    if (c === '-' && next === '-') {
      const end = text.indexOf('\n', i);
      i = end === -1 ? text.length : end + 1;
      out += ' ';
    } else if (c === '/' && next === '*') {
      // PostgreSQL's block comments nest.
      let depth = 1;
      let j = i + 2;
      while (j < text.length && depth > 0) {
        const pair = text.slice(j, j + 2);
        const step = pair === '/*' ? 1 : pair === '*/' ? -1 : 0;
        depth += step;
        j += step === 0 ? 1 : 2;
      }
      if (depth > 0) return { reason: 'an unterminated comment (the text is cut)' };
      i = j;
      out += ' ';
    } else if (c === "'" || c === '"') {
      // Standard strings (a doubled quote escapes); an E'' literal is refused below, whatever this reading made of it.
      let j = i + 1;
      for (;;) {
        if (j >= text.length) return { reason: 'an unterminated literal or quoted name (the text is cut)' };
        if (text[j] === c && text[j + 1] === c) j += 2;
        else if (text[j] === c) break;
        else j++;
      }
      out += c === "'" ? ' $0 ' : ' ident ';
      i = j + 1;
    } else if (c === '$' && /[A-Za-z_$]/.test(next ?? '')) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(i));
      if (!tag) return { reason: 'a stray $ that is neither a parameter nor a dollar quote' };
      const end = text.indexOf(tag[0], i + tag[0].length);
      if (end === -1) return { reason: 'an unterminated dollar-quoted literal (the text is cut)' };
      out += ' $0 ';
      i = end + tag[0].length;
    } else {
      out += c;
      i++;
    }
  }
  return { skeleton: out };
}

/** Whether EXPLAIN may be given this text: a single plain SELECT calling only known read-only functions. */
export function explainability(text: string): Explainability {
  if (text.endsWith('…')) return { explainable: false, reason: 'the text is cut' };
  const read = sqlSkeleton(text);
  if ('reason' in read) return { explainable: false, reason: read.reason };
  // One trailing semicolon is harmless; any other is a second statement.
  const skeleton = read.skeleton.trim().replace(/;\s*$/, '');
  if (skeleton.includes(';')) return { explainable: false, reason: 'more than one statement' };
  if (/[\\`]/.test(skeleton) || skeleton.includes('E $0') || /\bU&/.test(skeleton)) return { explainable: false, reason: 'escape syntax the check does not read' };
  const words = skeleton.toLowerCase().match(/[a-z_][a-z0-9_$]*/g) ?? [];
  if (words[0] !== 'select') return { explainable: false, reason: `not a SELECT (starts with ${(words[0] ?? '(nothing)').toUpperCase()})` };
  if (/\bfor\s+(update|no\s+key|key|share)\b/i.test(skeleton)) return { explainable: false, reason: 'a locking clause (FOR UPDATE/SHARE)' };
  const forbidden = words.find((w) => forbiddenWords.has(w));
  if (forbidden) return { explainable: false, reason: `contains ${forbidden.toUpperCase()}` };
  for (const call of skeleton.matchAll(/([A-Za-z_][A-Za-z0-9_$]*)\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_$]*)\s*)?\(/g)) {
    const name = (call[2] ?? call[1]!).toLowerCase();
    const schema = call[2] ? call[1]!.toLowerCase() : undefined;
    if (schema === undefined && syntaxBeforeParen.has(name)) continue;
    if ((schema === undefined || schema === 'pg_catalog') && readOnlyFunctions.has(name)) continue;
    // A quoted name (replaced by "ident") before a parenthesis is a call of a quoted function.
    return { explainable: false, reason: `calls ${schema ? `${schema}.` : ''}${name}(), not known to be read-only` };
  }
  return { explainable: true };
}
