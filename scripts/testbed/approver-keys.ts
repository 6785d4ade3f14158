import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateEd25519KeyPair } from '../../client/signing';
import type { ApproverRole } from '../../common/runbook';
import { sandboxApproverKeyDir } from '../../config/sandbox';

/**
 * The sandbox's demo identities, each with an Ed25519 key under `.testbed/approver-keys/<id>`
 * (OpenSSH format, as ssh-keygen writes it), so the README walkthrough runs with signed
 * approvals: `runbook approve ... --as bob` signs with bob's demo key.
 */
export const demoIdentities: Array<{ id: string; kind: 'person' | 'service'; roles: ApproverRole[] }> = [
  { id: 'alice', kind: 'person', roles: ['l1'] },
  { id: 'bob', kind: 'person', roles: ['l2'] },
  { id: 'carol', kind: 'person', roles: ['manager'] },
  { id: 'dave', kind: 'person', roles: ['cto'] },
  { id: 'alert-bridge', kind: 'service', roles: [] },
];

/** Makes the demo keys that are missing; returns the approvers (with public keys) for RUNBOOK_APPROVERS. */
export function ensureDemoApprovers(stateDir: string): Array<{ id: string; kind: string; roles: ApproverRole[]; publicKey: string }> {
  const dir = sandboxApproverKeyDir(stateDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return demoIdentities.map(({ id, kind, roles }) => {
    const privatePath = join(dir, id);
    if (!existsSync(privatePath) || !existsSync(`${privatePath}.pub`)) {
      const pair = generateEd25519KeyPair(`${id}@runbook-sandbox`);
      writeFileSync(privatePath, pair.private, { mode: 0o600 });
      writeFileSync(`${privatePath}.pub`, `${pair.public}\n`, { mode: 0o644 });
    }
    return { id, kind, roles, publicKey: readFileSync(`${privatePath}.pub`, 'utf8').trim() };
  });
}
