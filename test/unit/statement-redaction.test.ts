import { redactStatementSecrets } from '../../common/statement-redaction';

const verifier = 'SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo0MTIzNDU2Nzg=:ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=';

describe('redactStatementSecrets: no credential leaves a statement text', () => {
  test.each([
    ['ALTER ROLE', `ALTER ROLE app_user PASSWORD '${verifier}'`, `ALTER ROLE app_user PASSWORD '***'`],
    ['CREATE ROLE with plaintext', `CREATE ROLE pgtest LOGIN PASSWORD 'plain-Secret-1'`, `CREATE ROLE pgtest LOGIN PASSWORD '***'`],
    ['ENCRYPTED PASSWORD, lower case, WITH', `alter user app with encrypted password 'p@ss'' word' valid until 'infinity'`, `alter user app with encrypted PASSWORD '***' valid until 'infinity'`],
    ['E-string with an escaped quote', String.raw`ALTER ROLE a PASSWORD E'it\'s-secret' LOGIN`, `ALTER ROLE a PASSWORD '***' LOGIN`],
    ['dollar-quoted', 'CREATE USER b PASSWORD $pw$dollar-secret$pw$ LOGIN', `CREATE USER b PASSWORD '***' LOGIN`],
    ['a comment before the literal', `ALTER ROLE c PASSWORD /* new */ 'commented-secret'`, `ALTER ROLE c PASSWORD /* new */ '***'`],
    ['a literal cut at the end of the text', `ALTER ROLE d PASSWORD 'cut-secr…`, `ALTER ROLE d PASSWORD '***'`],
  ])('password literal: %s', (_name, statement, redacted) => {
    expect(redactStatementSecrets(statement)).toBe(redacted);
  });

  test('verifiers anywhere, also outside a PASSWORD clause', () => {
    const text = `UPDATE audit SET v = '${verifier}', w = 'md5${'0123456789abcdef'.repeat(2)}'`;
    expect(redactStatementSecrets(text)).toBe(`UPDATE audit SET v = 'SCRAM-SHA-256$***', w = 'md5***'`);
  });

  test('connection strings: URL user info and libpq password=', () => {
    expect(redactStatementSecrets(`SELECT dblink_connect('postgresql://app:url-secret@db:5432/app')`)).toBe(`SELECT dblink_connect('postgresql://***@db:5432/app')`);
    expect(redactStatementSecrets(`SELECT dblink_connect('host=db user=app password=kv-secret dbname=app')`)).toBe(`SELECT dblink_connect('host=db user=app password=*** dbname=app')`);
    expect(redactStatementSecrets(`CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'a', password 'opt-secret')`)).toBe(`CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'a', PASSWORD '***')`);
    expect(redactStatementSecrets(`SELECT 'sslpassword = ''quoted secret'' host=x'`)).not.toContain('quoted secret');
  });

  test('statements without credentials are unchanged', () => {
    for (const text of ['SELECT pg_sleep($1)', 'ALTER ROLE app PASSWORD NULL', 'SELECT * FROM users WHERE password_hash = $1', "SELECT 'password reset' AS topic"]) {
      expect(redactStatementSecrets(text)).toBe(text);
    }
  });
});
