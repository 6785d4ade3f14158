import { explainability } from '../../common/explainable-statement';

/** Which pg_stat_statements texts databaseOptimization gives to EXPLAIN (plain SELECTs only). */
describe('explainability', () => {
  test.each([
    'SELECT p.id FROM projects AS p WHERE p.user_id = $1 ORDER BY p.created_at DESC LIMIT $2',
    'select count(*) from storyboards where project_id = any($1)',
    `SELECT id FROM projects WHERE to_tsvector('english', name) @@ plainto_tsquery($1);`,
    'SELECT count(*) FROM users /* ; DROP TABLE users; */ WHERE id > $1',
    `SELECT 'a;b' AS s, "weird;name" FROM t`,
  ])('plain SELECT: %s', (text) => expect(explainability(text)).toEqual({ explainable: true }));

  test.each([
    ['UPDATE projects SET name = $1', 'not a SELECT (starts with UPDATE)'],
    ['WITH d AS (DELETE FROM sessions RETURNING *) SELECT * FROM d', 'not a SELECT (starts with WITH)'],
    ['SELECT * INTO copy FROM users', 'contains INTO'],
    ['SELECT * FROM users FOR UPDATE', 'a locking clause (FOR UPDATE/SHARE)'],
    ['SELECT * FROM users FOR NO KEY UPDATE', 'a locking clause (FOR UPDATE/SHARE)'],
    ['SELECT 1; DROP TABLE users', 'more than one statement'],
    ['SELECT pg_terminate_backend($1)', 'calls pg_terminate_backend(), not known to be read-only'],
    ['SELECT nextval($1)', 'calls nextval(), not known to be read-only'],
    ['SELECT public.my_func()', 'calls public.my_func(), not known to be read-only'],
    ['SELECT "evil"()', 'calls ident(), not known to be read-only'],
    ["SELECT E'\\\\' ; DROP TABLE users; --'", 'more than one statement'],
    ["SELECT E'x' FROM t", 'escape syntax the check does not read'],
    ["SELECT 'unterminated", 'an unterminated literal or quoted name (the text is cut)'],
    ['SELECT a FROM t /* cut', 'an unterminated comment (the text is cut)'],
    ['SELECT $q$ ; DROP TABLE users', 'an unterminated dollar-quoted literal (the text is cut)'],
    ['SELECT a FROM t WHERE b = $1…', 'the text is cut'],
    ['DO $$BEGIN DROP TABLE users; END$$', 'not a SELECT (starts with DO)'],
  ])('not explained: %s', (text, reason) => expect(explainability(text)).toEqual({ explainable: false, reason }));
});
