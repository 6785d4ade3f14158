import { readFileSync } from 'node:fs';
import { OpenSSHAgent, utils, type ParsedKey } from 'ssh2';
import { signatureNamespace } from '../common/approval-statements';
import { armorSshSignature, ed25519KeyType, formatSshPublicKey, parseSshPublicKey, sshsigSignedData } from '../common/ssh-signature';

/**
 * Signs a statement's text as `identity` and returns the armored SSHSIG (namespace
 * runbook-approval). The client API takes one, so services sign with their own keys; the CLI
 * builds one from ssh-agent or a key file.
 */
export type Signer = (message: string, identity: string) => Promise<string>;

/** A key of ssh-keygen's formats (OpenSSH, PEM), optionally encrypted. */
function parsePrivateKey(text: string, passphrase?: string): ParsedKey {
  const parsed = utils.parseKey(text, passphrase);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) throw new Error(`cannot read the private key: ${key instanceof Error ? key.message : 'no key in it'}`);
  if (key.type !== ed25519KeyType) throw new Error(`only ${ed25519KeyType} keys can sign approvals (got ${key.type})`);
  return key;
}

/** Signs with a private key held in memory (a service's key from its secret). */
export function privateKeySigner(privateKeyText: string, passphrase?: string): Signer {
  const key = parsePrivateKey(privateKeyText, passphrase);
  const blob = new Uint8Array(key.getPublicSSH());
  return async (message) => armorSshSignature(blob, signatureNamespace, new Uint8Array(key.sign(Buffer.from(sshsigSignedData(signatureNamespace, message)))));
}

export function keyFileSigner(path: string, passphrase?: string): Signer {
  return privateKeySigner(readFileSync(path, 'utf8'), passphrase);
}

/** The public key line of a private key file (what goes into configuration). */
export function publicKeyOfKeyFile(path: string): string {
  return formatSshPublicKey(new Uint8Array(parsePrivateKey(readFileSync(path, 'utf8')).getPublicSSH()));
}

/**
 * Signs through ssh-agent (the SSH keys SREs already have). With `publicKey`, that key must be
 * in the agent; without, its first Ed25519 key signs. The private key never leaves the agent.
 */
export async function agentSigner(socketPath: string, publicKey?: string): Promise<{ signer: Signer; publicKey: string }> {
  const agent = new OpenSSHAgent(socketPath);
  const keys = await new Promise<ParsedKey[]>((resolve, reject) => agent.getIdentities((err, found) => (err ? reject(err) : resolve((found ?? []) as ParsedKey[]))));
  const wanted = publicKey ? parseSshPublicKey(publicKey).blob : undefined;
  const key = keys.find((k) => k.type === ed25519KeyType && (!wanted || Buffer.from(k.getPublicSSH()).equals(Buffer.from(wanted))));
  if (!key) throw new Error(publicKey ? 'ssh-agent does not hold the key configured for you' : `ssh-agent holds no ${ed25519KeyType} key`);
  const blob = new Uint8Array(key.getPublicSSH());
  const signer: Signer = (message) =>
    new Promise((resolve, reject) =>
      agent.sign(key, Buffer.from(sshsigSignedData(signatureNamespace, message)), (err, signature) =>
        err || !signature ? reject(err ?? new Error('ssh-agent returned no signature')) : resolve(armorSshSignature(blob, signatureNamespace, new Uint8Array(signature))),
      ),
    );
  return { signer, publicKey: formatSshPublicKey(blob) };
}

/**
 * A new Ed25519 key pair in OpenSSH format (as ssh-keygen writes it). ssh2's generator drops a
 * leading zero byte of the public key (about one key in 256 comes out 31 bytes long and broken),
 * so such pairs are drawn again.
 */
export function generateEd25519KeyPair(comment: string): { private: string; public: string } {
  for (;;) {
    const pair = utils.generateKeyPairSync('ed25519', { comment });
    try {
      parseSshPublicKey(pair.public);
      return pair;
    } catch {
      // a public key ssh2 mangled: draw again
    }
  }
}

/** One signer per identity (a keyring), e.g. the sandbox's demo approvers. */
export function keyringSigner(signers: Record<string, Signer>): Signer {
  return (message, identity) => {
    const signer = signers[identity];
    if (!signer) return Promise.reject(new Error(`no key for ${identity}`));
    return signer(message, identity);
  };
}
