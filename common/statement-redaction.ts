import { redactUrlCredentials } from './failures';

/** Whitespace and SQL comments that may stand between PASSWORD and its literal. */
const gap = String.raw`(?:\s|/\*[\s\S]*?\*/|--[^\n]*\n)+`;
/**
 * A string literal up to its closing quote, or to the end of a cut text: plain, E'' (backslash
 * escapes), U&'' or dollar-quoted. Backslashes are read as escapes everywhere: that can only make
 * the match longer, and redacting too much is harmless.
 */
const literal = String.raw`(?:[Ee]|[Uu]&)?'(?:[^'\\]|\\[\s\S]|'')*(?:'|$)|\$(?<tag>[A-Za-z_][A-Za-z_0-9]*)?\$[\s\S]*?(?:\$\k<tag>\$|$)`;

const passwordLiteral = new RegExp(String.raw`\b((?:UN)?ENCRYPTED${gap})?PASSWORD(${gap})(?:${literal})`, 'gi');
/** Password verifiers as pg_authid stores them, wherever they appear (SCRAM-SHA-256$iterations:salt$key:key, md5 + 32 hex). */
const scramVerifier = /SCRAM-SHA-256\$[^\s'"]*/g;
const md5Verifier = /\bmd5[0-9a-f]{32}\b/gi;
/** libpq key/value connection strings (`password=…`, `sslpassword=…`), quoted or not; quoted inside an SQL literal too (''…''). */
const keywordPassword = /\b(\w*password)(\s*=\s*)(?:(?:''|')(?:[^'\\]|\\[\s\S])*(?:''|'|$)|[^\s']+)/gi;

/**
 * A statement text (pg_stat_statements, logs) without credentials: password literals of
 * CREATE/ALTER ROLE (also ENCRYPTED, E'', dollar-quoted, cut at the end), SCRAM and md5
 * verifiers, user info in URLs and `password=` in libpq connection strings become `***`.
 */
export function redactStatementSecrets(text: string): string {
  return redactUrlCredentials(
    text
      .replace(passwordLiteral, (_match, encrypted: string | undefined, space: string) => `${encrypted ?? ''}PASSWORD${space}'***'`)
      .replace(scramVerifier, 'SCRAM-SHA-256$***')
      .replace(md5Verifier, 'md5***')
      .replace(keywordPassword, '$1$2***'),
  );
}
