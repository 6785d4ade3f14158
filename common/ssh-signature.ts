import { ed25519 } from '@noble/curves/ed25519';
import { sha256, sha512 } from '@noble/hashes/sha2';
import { base64 } from '@scure/base';

/**
 * OpenSSH Ed25519 keys and SSHSIG signatures (the format of `ssh-keygen -Y sign` and of git's SSH
 * signed commits, PROTOCOL.sshsig), in pure JS so workflow code verifies them deterministically:
 * no Node crypto, no Buffer. Signing needs the private key, so it lives in client/signing.ts.
 */

export const ed25519KeyType = 'ssh-ed25519';
const magic = new TextEncoder().encode('SSHSIG');
const hashAlgorithm = 'sha512';

export interface SshPublicKey {
  /** The SSH wire blob (string "ssh-ed25519", string key): what SSHSIG and agents carry. */
  blob: Uint8Array;
  /** The 32-byte Ed25519 key. */
  key: Uint8Array;
  /** As `ssh-keygen -l` prints it: SHA256:<base64 without padding>. */
  fingerprint: string;
}

/** The SSH wire format's `string`: a 32-bit big-endian length, then the bytes. */
function sshString(bytes: Uint8Array | string): Uint8Array {
  const body = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Reads SSH wire `string`s one after another; throws on a truncated blob. */
class WireReader {
  private offset = 0;
  constructor(private readonly input: Uint8Array) {}
  raw(length: number): Uint8Array {
    if (this.offset + length > this.input.length) throw new Error('truncated');
    const out = this.input.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }
  uint32(): number {
    const b = this.raw(4);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0);
  }
  bytes(): Uint8Array {
    return this.raw(this.uint32());
  }
  text(): string {
    return new TextDecoder().decode(this.bytes());
  }
  get done(): boolean {
    return this.offset === this.input.length;
  }
}

function decodeBase64(text: string, what: string): Uint8Array {
  try {
    return base64.decode(text.replace(/\s+/g, ''));
  } catch {
    throw new Error(`${what} is not valid base64`);
  }
}

const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);

export function fingerprintOf(blob: Uint8Array): string {
  return `SHA256:${base64.encode(sha256(blob)).replace(/=+$/, '')}`;
}

export function publicKeyFromBlob(blob: Uint8Array): SshPublicKey {
  const reader = new WireReader(blob);
  const type = reader.text();
  if (type !== ed25519KeyType) throw new Error(`only ${ed25519KeyType} keys are supported (got ${type})`);
  const key = reader.bytes();
  if (key.length !== 32 || !reader.done) throw new Error(`not a well-formed ${ed25519KeyType} key`);
  return { blob, key, fingerprint: fingerprintOf(blob) };
}

/** "ssh-ed25519 AAAA... [comment]", as in authorized_keys and git's allowed_signers. */
export function parseSshPublicKey(line: string): SshPublicKey {
  const [type, data] = line.trim().split(/\s+/);
  if (type !== ed25519KeyType || !data) throw new Error(`expected an OpenSSH public key "${ed25519KeyType} AAAA..."`);
  const key = publicKeyFromBlob(decodeBase64(data, 'the public key'));
  return key;
}

export function formatSshPublicKey(blob: Uint8Array, comment?: string): string {
  return `${ed25519KeyType} ${base64.encode(blob)}${comment ? ` ${comment}` : ''}`;
}

/** What the private key signs for a message under an SSHSIG namespace (PROTOCOL.sshsig §3). */
export function sshsigSignedData(namespace: string, message: Uint8Array | string): Uint8Array {
  const body = typeof message === 'string' ? new TextEncoder().encode(message) : message;
  return concat(magic, sshString(namespace), sshString(''), sshString(hashAlgorithm), sshString(sha512(body)));
}

/** The armored SSHSIG for a raw Ed25519 signature made over sshsigSignedData. */
export function armorSshSignature(publicKeyBlob: Uint8Array, namespace: string, rawSignature: Uint8Array): string {
  const version = new Uint8Array([0, 0, 0, 1]);
  const signature = sshString(concat(sshString(ed25519KeyType), sshString(rawSignature)));
  const blob = concat(magic, version, sshString(publicKeyBlob), sshString(namespace), sshString(''), sshString(hashAlgorithm), signature);
  const lines = base64.encode(blob).match(/.{1,70}/g) ?? [];
  return ['-----BEGIN SSH SIGNATURE-----', ...lines, '-----END SSH SIGNATURE-----'].join('\n');
}

interface ParsedSignature {
  publicKey: SshPublicKey;
  namespace: string;
  hashAlgorithm: string;
  signature: Uint8Array;
}

function parseArmoredSignature(armored: string): ParsedSignature {
  const match = /-----BEGIN SSH SIGNATURE-----([\s\S]*?)-----END SSH SIGNATURE-----/.exec(armored);
  const blob = decodeBase64(match ? match[1]! : armored, 'the signature');
  const reader = new WireReader(blob);
  if (!equalBytes(reader.raw(6), magic)) throw new Error('not an SSH signature (no SSHSIG header)');
  if (reader.uint32() !== 1) throw new Error('unsupported SSH signature version');
  const publicKey = publicKeyFromBlob(reader.bytes());
  const namespace = reader.text();
  reader.bytes(); // reserved
  const algorithm = reader.text();
  const inner = new WireReader(reader.bytes());
  if (inner.text() !== ed25519KeyType) throw new Error(`only ${ed25519KeyType} signatures are supported`);
  const signature = inner.bytes();
  if (signature.length !== 64) throw new Error('the Ed25519 signature is not 64 bytes');
  return { publicKey, namespace, hashAlgorithm: algorithm, signature };
}

export type SignatureCheck = { ok: true; fingerprint: string } | { ok: false; reason: string };

/**
 * Whether `armored` is a valid SSHSIG by `publicKeyLine` over `message` under `namespace`. Never
 * throws: a malformed signature is a reason like any other.
 */
export function verifySshSignature(publicKeyLine: string, namespace: string, message: string, armored: string): SignatureCheck {
  let expected: SshPublicKey;
  let parsed: ParsedSignature;
  try {
    expected = parseSshPublicKey(publicKeyLine);
  } catch (err) {
    return { ok: false, reason: `the configured key cannot be read: ${(err as Error).message}` };
  }
  try {
    parsed = parseArmoredSignature(armored);
  } catch (err) {
    return { ok: false, reason: `malformed signature: ${(err as Error).message}` };
  }
  if (!equalBytes(parsed.publicKey.blob, expected.blob)) {
    return { ok: false, reason: `signed by key ${parsed.publicKey.fingerprint}, not by the configured key ${expected.fingerprint}` };
  }
  if (parsed.namespace !== namespace) return { ok: false, reason: `signed for namespace "${parsed.namespace}", not "${namespace}"` };
  if (parsed.hashAlgorithm !== 'sha512' && parsed.hashAlgorithm !== 'sha256') return { ok: false, reason: `unsupported hash ${parsed.hashAlgorithm}` };
  const body = new TextEncoder().encode(message);
  const digest = parsed.hashAlgorithm === 'sha512' ? sha512(body) : sha256(body);
  const signedData = concat(magic, sshString(namespace), sshString(''), sshString(parsed.hashAlgorithm), sshString(digest));
  let valid = false;
  try {
    valid = ed25519.verify(parsed.signature, signedData, expected.key, { zip215: false });
  } catch {
    valid = false;
  }
  return valid ? { ok: true, fingerprint: expected.fingerprint } : { ok: false, reason: `the signature does not verify with key ${expected.fingerprint}` };
}
