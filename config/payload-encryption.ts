import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

/** The metadata our encrypted payloads carry (the names Temporal's samples and codec tools use). */
export const encryptedEncoding = 'binary/encrypted';
export const keyIdMetadata = 'encryption-key-id';

const ProtoPayload = temporal.api.common.v1.Payload;
const ivBytes = 12;
const tagBytes = 16;

export class PayloadDecryptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PayloadDecryptionError';
  }
}

/** Configuration's keys as base64 text, by key id. */
export interface PayloadKeys {
  keys: Record<string, string>;
  activeKeyId: string;
}

const text = (bytes: Uint8Array | null | undefined) => (bytes ? Buffer.from(bytes).toString('utf8') : undefined);

/**
 * AES-256-GCM over the whole payload (metadata and data, serialized as Temporal's Payload proto):
 * history keeps only the key id and ciphertext. Encrypts with the active key; decrypts with any
 * known key, so old histories stay readable after a rotation. The key id is authenticated too.
 * Payloads that are not encrypted pass through decode unchanged (histories from before encryption).
 */
export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly keys: Map<string, Buffer>;

  constructor(private readonly settings: PayloadKeys) {
    this.keys = new Map(Object.entries(settings.keys).map(([id, key]) => [id, Buffer.from(key, 'base64')]));
    for (const [id, key] of this.keys) if (key.length !== 32) throw new Error(`payload key ${id} is not 32 bytes (AES-256 needs a 32-byte key)`);
    if (!this.keys.has(settings.activeKeyId)) throw new Error(`the active payload key ${settings.activeKeyId} is not among the keys (${[...this.keys.keys()].join(', ')})`);
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const keyId = this.settings.activeKeyId;
    const key = this.keys.get(keyId)!;
    return payloads.map((payload) => {
      const iv = randomBytes(ivBytes);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(keyId));
      const sealed = Buffer.concat([cipher.update(ProtoPayload.encode(payload).finish()), cipher.final()]);
      return {
        metadata: { encoding: Buffer.from(encryptedEncoding), [keyIdMetadata]: Buffer.from(keyId) },
        data: Buffer.concat([iv, sealed, cipher.getAuthTag()]),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      if (text(payload.metadata?.encoding) !== encryptedEncoding) return payload;
      const keyId = text(payload.metadata?.[keyIdMetadata]);
      if (!keyId) throw new PayloadDecryptionError(`an encrypted payload has no ${keyIdMetadata}: it was not written by this codec`);
      const key = this.keys.get(keyId);
      if (!key) {
        throw new PayloadDecryptionError(
          `a payload is encrypted with key id "${keyId}", which is not configured (known: ${[...this.keys.keys()].join(', ')}): add that key to RUNBOOK_PAYLOAD_KEYS to read it`,
        );
      }
      const data = Buffer.from(payload.data ?? []);
      if (data.length < ivBytes + tagBytes) throw new PayloadDecryptionError(`an encrypted payload (key id "${keyId}") is too short to be ours: it was cut or altered`);
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, ivBytes));
        decipher.setAAD(Buffer.from(keyId));
        decipher.setAuthTag(data.subarray(data.length - tagBytes));
        const plain = Buffer.concat([decipher.update(data.subarray(ivBytes, data.length - tagBytes)), decipher.final()]);
        const inner = ProtoPayload.decode(plain);
        return { metadata: inner.metadata, data: inner.data };
      } catch {
        throw new PayloadDecryptionError(`a payload encrypted with key id "${keyId}" failed authentication: it was altered, or the key configured under that id is not the one that encrypted it`);
      }
    });
  }
}

/**
 * The data converter of every client and worker: the default one, or encrypted when keys are
 * configured. The failure converter is given by path, as the workflow sandbox loads it too.
 */
export function payloadDataConverter(encryption: PayloadKeys | undefined): DataConverter | undefined {
  if (!encryption) return undefined;
  return { payloadCodecs: [new AesGcmPayloadCodec(encryption)], failureConverterPath: require.resolve('./payload-failure-converter') };
}
