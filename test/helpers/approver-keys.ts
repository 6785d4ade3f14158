import type { ApproverRole } from '../../common/runbook';
import { parseSshPublicKey } from '../../common/ssh-signature';
import { generateEd25519KeyPair, keyringSigner, privateKeySigner, type Signer } from '../../client/signing';

export interface TestKey {
  privateKey: string;
  publicKey: string;
  fingerprint: string;
  signer: Signer;
}

/** A fresh Ed25519 key pair in OpenSSH format, as ssh-keygen makes them. */
export function newKey(comment: string): TestKey {
  const pair = generateEd25519KeyPair(comment);
  return { privateKey: pair.private, publicKey: pair.public, fingerprint: parseSshPublicKey(pair.public).fingerprint, signer: privateKeySigner(pair.private) };
}

/** People with roles and keys: RUNBOOK_APPROVERS for the worker, and a keyring signer for clients. */
export function keyedApprovers(people: Record<string, ApproverRole[]>) {
  const keys = Object.fromEntries(Object.keys(people).map((id) => [id, newKey(id)]));
  const approvers = Object.entries(people).map(([id, roles]) => ({ id, roles, publicKey: keys[id]!.publicKey }));
  return {
    keys,
    approvers,
    signer: keyringSigner(Object.fromEntries(Object.entries(keys).map(([id, key]) => [id, key.signer]))),
  };
}
