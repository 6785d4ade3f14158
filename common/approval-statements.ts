import { z } from 'zod';
import { sha256Hex } from './sha256';
import { stableJson } from './stable-json';
import { zodProblems } from './zod-problems';

/**
 * Signed statements: what a person (or a service) signs with their SSH key to start a run or to
 * decide on a step. The text signed is the statement's canonical JSON (keys sorted, no spaces),
 * under the SSHSIG namespace below, so `ssh-keygen -Y sign -n runbook-approval` makes the same
 * signature as the CLI. Every field that could be replayed elsewhere is bound: the Temporal
 * namespace, the workflow id and run id, the step, the plan hash, the verdict and a short expiry.
 */
export const signatureNamespace = 'runbook-approval';

const isoInstant = z.iso.datetime({ offset: false, message: 'expected an ISO instant such as 2026-12-04T10:00:00.000Z' });

export const decisionStatementSchema = z
  .object({
    type: z.literal('runbook-decision/v1'),
    temporalNamespace: z.string().min(1),
    workflowId: z.string().min(1),
    runId: z.string().min(1),
    stepId: z.string().min(1),
    planHash: z.string().regex(/^[0-9a-f]{64}$/, { message: 'expected the full 64-character plan hash' }),
    verdict: z.enum(['approve', 'reject']),
    approver: z.string().min(1),
    /** Whose key signed, when not the approver's own: a channel (Slack) vouching for them. */
    signer: z.string().min(1).optional(),
    reason: z.string().trim().min(1, { message: 'a reason is required' }),
    issuedAt: isoInstant,
    expiresAt: isoInstant,
  })
  .strict();
export type DecisionStatement = z.infer<typeof decisionStatementSchema>;

export const startStatementSchema = z
  .object({
    type: z.literal('runbook-start/v1'),
    temporalNamespace: z.string().min(1),
    workflowId: z.string().min(1),
    runbook: z.string().min(1),
    /** sha256 of the input's canonical JSON without the proof itself (inputDigest). */
    inputDigest: z.string().regex(/^[0-9a-f]{64}$/),
    /** Whose key signed: a person (then also startedBy) or a service starting on someone's behalf. */
    signer: z.string().min(1),
    startedBy: z.string().min(1),
    issuedAt: isoInstant,
    expiresAt: isoInstant,
  })
  .strict();
export type StartStatement = z.infer<typeof startStatementSchema>;

/** A statement and its armored SSHSIG; what the Update, the Signal and a start's input carry. */
export const signedStatementSchema = z.object({ statement: z.string().min(1), signature: z.string().min(1) }).strict();
export type SignedStatement = z.infer<typeof signedStatementSchema>;

export function statementText(statement: DecisionStatement | StartStatement): string {
  return stableJson(statement);
}

/** The digest a start statement binds: the validated input without its own proof. */
export function inputDigest(input: Record<string, unknown>): string {
  const { startProof: _proof, ...rest } = input;
  return sha256Hex(stableJson(rest));
}

/** Parses a signed statement's text; a sentence saying what is wrong otherwise. */
export function parseStatement<T extends z.ZodType>(schema: T, text: string): { ok: true; statement: z.infer<T> } | { ok: false; reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'malformed statement: not JSON' };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    return { ok: false, reason: `malformed statement: ${zodProblems(parsed.error, 'statement').join('; ')}` };
  }
  if (statementText(parsed.data as DecisionStatement) !== text) return { ok: false, reason: 'malformed statement: not in canonical form (sorted keys, no spaces)' };
  return { ok: true, statement: parsed.data };
}

/** Why a statement is not valid at `now` (ms), or undefined; `maxLifetimeMs` caps expiresAt - issuedAt. */
export function timeProblem(statement: { issuedAt: string; expiresAt: string }, now: number, maxLifetimeMs: number): string | undefined {
  const issued = Date.parse(statement.issuedAt);
  const expires = Date.parse(statement.expiresAt);
  const skewMs = 5 * 60_000;
  if (expires <= issued) return 'the statement expires before it was issued';
  if (expires - issued > maxLifetimeMs) return `the statement is valid for ${Math.round((expires - issued) / 1000)} s, longer than the ${Math.round(maxLifetimeMs / 1000)} s allowed`;
  if (issued > now + skewMs) return `the statement was issued in the future (${statement.issuedAt})`;
  if (now > expires) return `the statement expired at ${statement.expiresAt}: sign a new one`;
  return undefined;
}
