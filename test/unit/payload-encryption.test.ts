import { randomBytes } from 'node:crypto';
import type { Payload } from '@temporalio/common';
import { ConfigError, loadConfig } from '../../config/load';
import { AesGcmPayloadCodec, PayloadDecryptionError } from '../../config/payload-encryption';

const oldKey = randomBytes(32).toString('base64');
const newKey = randomBytes(32).toString('base64');
const plain: Payload = { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('{"target":"short-drama-prod/short-drama-app"}') };

const text = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? []).toString('utf8');

describe('payload encryption codec (AES-256-GCM)', () => {
  test('round trip: history holds only the key id and ciphertext; decode gives back the payload', async () => {
    const codec = new AesGcmPayloadCodec({ keys: { k1: oldKey }, activeKeyId: 'k1' });
    const [encrypted] = await codec.encode([plain]);
    expect(text(encrypted!.metadata!.encoding)).toBe('binary/encrypted');
    expect(text(encrypted!.metadata!['encryption-key-id'])).toBe('k1');
    expect(text(encrypted!.data)).not.toContain('short-drama');
    expect(text(encrypted!.data)).not.toContain('json/plain');
    const [decoded] = await codec.decode([encrypted!]);
    expect(text(decoded!.data)).toBe(text(plain.data));
    expect(text(decoded!.metadata!.encoding)).toBe('json/plain');
  });

  test('rotation: the new key encrypts, the old key still decrypts what it wrote', async () => {
    const before = new AesGcmPayloadCodec({ keys: { k1: oldKey }, activeKeyId: 'k1' });
    const after = new AesGcmPayloadCodec({ keys: { k1: oldKey, k2: newKey }, activeKeyId: 'k2' });
    const [old] = await before.encode([plain]);
    const [fresh] = await after.encode([plain]);
    expect(text(fresh!.metadata!['encryption-key-id'])).toBe('k2');
    expect((await after.decode([old!, fresh!])).map((p) => text(p.data))).toEqual([text(plain.data), text(plain.data)]);
  });

  test('a payload under a key id not configured is refused with a sentence naming it', async () => {
    const [encrypted] = await new AesGcmPayloadCodec({ keys: { k2: newKey }, activeKeyId: 'k2' }).encode([plain]);
    const reader = new AesGcmPayloadCodec({ keys: { k1: oldKey }, activeKeyId: 'k1' });
    await expect(reader.decode([encrypted!])).rejects.toThrow(
      new PayloadDecryptionError('a payload is encrypted with key id "k2", which is not configured (known: k1): add that key to RUNBOOK_PAYLOAD_KEYS to read it'),
    );
  });

  test('tampered ciphertext, or a different key under the same id, fails authentication', async () => {
    const codec = new AesGcmPayloadCodec({ keys: { k1: oldKey }, activeKeyId: 'k1' });
    const [encrypted] = await codec.encode([plain]);
    const data = Buffer.from(encrypted!.data!);
    data[20] = data[20]! ^ 1;
    await expect(codec.decode([{ ...encrypted!, data }])).rejects.toThrow(/failed authentication: it was altered/);
    const impostor = new AesGcmPayloadCodec({ keys: { k1: newKey }, activeKeyId: 'k1' });
    await expect(impostor.decode([encrypted!])).rejects.toThrow(PayloadDecryptionError);
  });

  test('payloads written before encryption was turned on pass through decode', async () => {
    const codec = new AesGcmPayloadCodec({ keys: { k1: oldKey }, activeKeyId: 'k1' });
    expect(await codec.decode([plain])).toEqual([plain]);
  });
});

describe('payload encryption configuration', () => {
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig({ env: { TEMPORAL_ADDRESS: '127.0.0.1:7233', ...env } });
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
    throw new Error('expected the configuration to be rejected');
  };

  test('off by default; one key is the active one without naming it', () => {
    expect(loadConfig({ env: { TEMPORAL_ADDRESS: '127.0.0.1:7233' } }).temporal.payloadEncryption).toBeUndefined();
    const config = loadConfig({ env: { TEMPORAL_ADDRESS: '127.0.0.1:7233', RUNBOOK_PAYLOAD_KEYS: JSON.stringify({ k1: oldKey }) } });
    expect(config.temporal.payloadEncryption).toEqual({ keys: { k1: oldKey }, activeKeyId: 'k1' });
  });

  test('bad keys and ids are named by field and variable, never echoed', () => {
    const secretLooking = 'not-a-key-but-maybe-a-secret';
    const found = problems({ RUNBOOK_PAYLOAD_KEYS: JSON.stringify({ k1: secretLooking, k2: newKey }) });
    expect(found).toEqual([
      'temporal.payloadEncryption.keys.k1 (env RUNBOOK_PAYLOAD_KEYS): expected a base64 AES-256 key of 32 bytes (44 characters), e.g. from `openssl rand -base64 32`',
      'temporal.payloadEncryption.activeKeyId (env RUNBOOK_PAYLOAD_KEY_ID): name the key that encrypts: one of k1, k2',
    ]);
    expect(found.join('\n')).not.toContain(secretLooking);
    expect(problems({ RUNBOOK_PAYLOAD_KEYS: JSON.stringify({ k1: oldKey }), RUNBOOK_PAYLOAD_KEY_ID: 'k9' })).toEqual([
      'temporal.payloadEncryption.activeKeyId (env RUNBOOK_PAYLOAD_KEY_ID): is not among the keys (k1)',
    ]);
    expect(problems({ RUNBOOK_CODEC_TOKEN: 'short' })).toEqual([
      'temporal.payloadEncryption.keys (env RUNBOOK_PAYLOAD_KEYS): is required',
      'temporal.payloadEncryption.codecServer.listen (env RUNBOOK_CODEC_LISTEN): is required',
      'temporal.payloadEncryption.codecServer.token (env RUNBOOK_CODEC_TOKEN): expected a token of at least 16 characters',
    ]);
  });
});
