import { statementText, type DecisionStatement } from '../../common/approval-statements';
import type { Decision, PendingApproval } from '../../common/runbook';
import { checkDecision, type DecisionContext, type RefusalReason } from '../../workflows/kernel/decision-rules';
import { newKey } from '../helpers/approver-keys';

/**
 * The one rule set the Update validator and the Signal handler share, as a pure function: each
 * refusal with its sentence, and what a valid decision yields.
 */
describe('decision rules', () => {
  const keys = { bob: newKey('bob'), carol: newKey('carol'), erin: newKey('erin'), slack: newKey('slack') };
  const planHash = 'a'.repeat(64);
  const now = Date.parse('2026-12-04T10:00:00.000Z');
  const run = { namespace: 'default', workflowId: 'podCrashLoop/short-drama-prod/app', runId: 'run-1' };
  const pending: PendingApproval = {
    stepId: 'raise-memory',
    title: 'Raise the memory limit',
    planHash,
    change: { summary: 'memory 512Mi -> 768Mi', needed: true },
    allowedRoles: ['l2', 'manager'],
    approvers: ['bob', 'carol'],
    tier: 'l2',
    until: '2026-12-04T11:00:00.000Z',
  };
  const context = (overrides: Partial<DecisionContext> = {}): DecisionContext => ({
    pending,
    startedBy: 'erin',
    provenInitiator: 'erin',
    approvers: [
      { id: 'bob', roles: ['l2'], kind: 'person', publicKey: keys.bob.publicKey },
      { id: 'carol', roles: ['manager'], kind: 'person', publicKey: keys.carol.publicKey },
      { id: 'erin', roles: ['l2'], kind: 'person', publicKey: keys.erin.publicKey },
      { id: 'dave', roles: ['l2'], kind: 'person' },
      { id: 'slack', roles: [], kind: 'channel', publicKey: keys.slack.publicKey, vouchesFor: ['l1', 'l2'] },
    ],
    requireSignatures: true,
    run,
    now,
    maxLifetimeMs: 10 * 60_000,
    usedStatements: new Set(),
    approvedBy: [],
    decided: false,
    ...overrides,
  });

  async function signed(fields: Partial<DecisionStatement> = {}, signer = keys.bob): Promise<Decision> {
    const statement: DecisionStatement = {
      type: 'runbook-decision/v1',
      temporalNamespace: run.namespace,
      workflowId: run.workflowId,
      runId: run.runId,
      stepId: 'raise-memory',
      planHash,
      verdict: 'approve',
      approver: 'bob',
      reason: 'OOMKilled twice',
      issuedAt: new Date(now - 60_000).toISOString(),
      expiresAt: new Date(now + 4 * 60_000).toISOString(),
      ...fields,
    };
    const text = statementText(statement);
    return { statement: text, signature: await signer.signer(text, statement.signer ?? statement.approver) };
  }

  const refusal = (decision: Decision, overrides: Partial<DecisionContext> = {}, verdict: 'approve' | 'reject' = 'approve') => {
    const check = checkDecision(decision, verdict, context(overrides));
    return check.ok ? 'accepted' : check.refusal;
  };
  const reasonOf = (decision: Decision, overrides: Partial<DecisionContext> = {}, verdict: 'approve' | 'reject' = 'approve') => {
    const check = checkDecision(decision, verdict, context(overrides));
    return check.ok ? 'accepted' : check.reason;
  };

  /** The word each refusal is counted by in the worker's metrics (runbook_refusals_total's reason). */
  const reasons: Record<string, RefusalReason> = {
    'signed by another key': 'bad-signature',
    'for another run': 'wrong-run',
    'for another namespace': 'wrong-run',
    'for another step': 'not-pending',
    'for another plan': 'wrong-plan',
    'a signed plan hash cut to the digits shown': 'malformed',
    expired: 'statement-time',
    'valid too long': 'statement-time',
    'issued in the future': 'statement-time',
    'an unknown approver': 'unknown-approver',
    'an approver without a key': 'no-key',
    'the proven initiator': 'four-eyes',
    'a role not allowed': 'role-not-allowed',
    'a second approval by the same person': 'duplicate-approver',
    'a step already decided': 'already-decided',
    'nothing pending': 'not-pending',
    'a person signing for another': 'signed-for-another',
    'a channel beyond the roles it vouches for': 'role-not-allowed',
  };

  test('a signed decision by a configured person in an allowed role is accepted, with its key', async () => {
    const decision = await signed();
    expect(checkDecision(decision, 'approve', context())).toEqual({
      ok: true,
      decision: { stepId: 'raise-memory', planHash, approver: 'bob', reason: 'OOMKilled twice', role: 'l2', verified: true, keyFingerprint: keys.bob.fingerprint, statement: decision.statement },
    });
  });

  test.each<[string, () => Promise<Decision>, Partial<DecisionContext>, RegExp | string]>([
    ['signed by another key', () => signed({}, keys.carol), {}, `not signed by bob: signed by key ${keys.carol.fingerprint}, not by the configured key ${keys.bob.fingerprint}`],
    ['for another run', () => signed({ runId: 'run-2' }), {}, /^the statement is for run podCrashLoop\/short-drama-prod\/app \(run-2\)/],
    ['for another namespace', () => signed({ temporalNamespace: 'staging' }), {}, /in namespace staging, not for this run/],
    ['for another step', () => signed({ stepId: 'restart' }), {}, 'step "restart" is not waiting for approval (pending: "raise-memory")'],
    ['for another plan', () => signed({ planHash: 'b'.repeat(64) }), {}, `the decision names plan ${'b'.repeat(64)}, but the pending plan is ${planHash}: review the current plan and decide again`],
    ['a signed plan hash cut to the digits shown', () => signed({ planHash: planHash.slice(0, 12) }), {}, 'malformed statement: planHash: expected the full 64-character plan hash'],
    ['expired', () => signed({ issuedAt: new Date(now - 9 * 60_000).toISOString(), expiresAt: new Date(now - 60_000).toISOString() }), {}, /^the statement expired at/],
    ['valid too long', () => signed({ expiresAt: new Date(now + 60 * 60_000).toISOString() }), {}, /longer than the 600 s allowed$/],
    ['issued in the future', () => signed({ issuedAt: new Date(now + 6 * 60_000).toISOString(), expiresAt: new Date(now + 8 * 60_000).toISOString() }), {}, /issued in the future/],
    ['an unknown approver', () => signed({ approver: 'zed' }, keys.bob), {}, 'zed is not a configured approver'],
    ['an approver without a key', () => signed({ approver: 'dave' }, keys.bob), {}, 'dave has no public key configured, so a signature by them cannot be checked'],
    ['the proven initiator', () => signed({ approver: 'erin' }, keys.erin), {}, 'four-eyes rule: erin started this run and cannot approve its steps'],
    ['a role not allowed', () => signed({ approver: 'carol' }, keys.carol), { pending: { ...pending, allowedRoles: ['l2'] } }, 'carol (manager) may not decide "raise-memory": needs one of l2'],
    ['a second approval by the same person', () => signed(), { approvedBy: ['bob'] }, 'bob already approved "raise-memory": the quorum needs distinct approvers'],
    ['a step already decided', () => signed(), { decided: true }, 'step "raise-memory" was already decided'],
    ['nothing pending', () => signed(), { pending: undefined }, 'step "raise-memory" is not waiting for approval (nothing is)'],
    ['a person signing for another', () => signed({ signer: 'carol' }, keys.carol), {}, 'carol signed for bob, and only a channel may sign for someone else'],
    [
      'a channel beyond the roles it vouches for',
      () => signed({ approver: 'carol', signer: 'slack' }, keys.slack),
      {},
      'carol (manager) through slack (vouches for l1, l2) may not decide "raise-memory": needs one of l2, manager',
    ],
  ])('refused: %s', async (what, decision, overrides, expected) => {
    const made = await decision();
    const text = refusal(made, overrides);
    if (typeof expected === 'string') expect(text).toBe(expected);
    else expect(text).toMatch(expected);
    expect(reasonOf(made, overrides)).toBe(reasons[what]);
  });

  test('an unsigned decision (the UI dialog) may name the plan by the 12 or more digits shown, and is recorded with the whole hash', () => {
    const unsigned = (hash: string) => checkDecision({ stepId: 'raise-memory', planHash: hash, approver: 'bob', reason: 'OOMKilled twice' }, 'approve', context({ requireSignatures: false }));
    for (const shown of [planHash.slice(0, 12), planHash.slice(0, 30), planHash.slice(0, 12).toUpperCase(), planHash]) {
      expect(unsigned(shown)).toEqual({ ok: true, decision: { stepId: 'raise-memory', planHash, approver: 'bob', reason: 'OOMKilled twice', role: 'l2', verified: false } });
    }
    expect(unsigned(planHash.slice(0, 11))).toEqual({ ok: false, reason: 'wrong-plan', refusal: `plan aaaaaaaaaaa is too short to name a plan: give at least 12 digits of ${planHash}` });
    expect(unsigned('')).toEqual({ ok: false, reason: 'wrong-plan', refusal: `plan (none) is too short to name a plan: give at least 12 digits of ${planHash}` });
    expect(unsigned(`${planHash.slice(0, 11)}b`)).toEqual({
      ok: false,
      reason: 'wrong-plan',
      refusal: `the decision names plan aaaaaaaaaaab, but the pending plan is ${planHash}: review the current plan and decide again`,
    });
  });

  test('a statement works once, says its own verdict, and its fields cannot be changed beside it', async () => {
    const decision = await signed();
    expect(refusal(decision, { usedStatements: new Set([decision.statement!]) })).toBe('this statement was already used; sign a new one for each decision');
    expect(reasonOf(decision, { usedStatements: new Set([decision.statement!]) })).toBe('statement-reused');
    expect(reasonOf(decision, {}, 'reject')).toBe('statement-mismatch');
    expect(reasonOf({ ...decision, approver: 'carol' })).toBe('statement-mismatch');
    expect(reasonOf({ statement: decision.statement! })).toBe('malformed');
    expect(refusal(decision, {}, 'reject')).toBe('the statement says approve; it cannot reject');
    expect(refusal({ ...decision, approver: 'carol' })).toBe("the decision's approver differs from its signed statement");
    expect(refusal({ ...decision, statement: decision.statement!.replace('twice', 'thrice') })).toBe(`not signed by bob: the signature does not verify with key ${keys.bob.fingerprint}`);
    expect(refusal({ statement: decision.statement! })).toBe('a signed decision needs both statement and signature');
    expect(refusal({ statement: '{"type":"runbook-decision/v1"}', signature: decision.signature! })).toMatch(/^malformed statement: /);
    expect(refusal({ statement: JSON.stringify(JSON.parse(decision.statement!), null, 1), signature: decision.signature! })).toBe(
      'malformed statement: not in canonical form (sorted keys, no spaces)',
    );
  });

  test('a channel vouches for a person in the roles it may, and says so', async () => {
    const check = checkDecision(await signed({ signer: 'slack' }, keys.slack), 'approve', context());
    expect(check).toMatchObject({ ok: true, decision: { approver: 'bob', role: 'l2', vouchedBy: 'slack', keyFingerprint: keys.slack.fingerprint } });
  });

  test('unsigned decisions: refused where signatures are required, accepted as unverified where not', () => {
    const plain: Decision = { stepId: 'raise-memory', planHash, approver: 'bob', reason: 'ok' };
    expect(refusal(plain)).toMatch(/^an unsigned decision is refused/);
    expect(reasonOf(plain)).toBe('unsigned');
    expect(checkDecision(plain, 'approve', context({ requireSignatures: false }))).toEqual({ ok: true, decision: { ...plain, role: 'l2', verified: false } });
    // Without a proof the claimed initiator still may not approve.
    expect(refusal({ ...plain, approver: 'erin' }, { requireSignatures: false, provenInitiator: undefined })).toBe('four-eyes rule: erin started this run and cannot approve its steps');
    expect(refusal({ ...plain, reason: ' ' }, { requireSignatures: false })).toBe('a reason is required');
  });
});
