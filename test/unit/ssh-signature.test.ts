import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateEd25519KeyPair, keyFileSigner, privateKeySigner, publicKeyOfKeyFile } from '../../client/signing';
import { signatureNamespace } from '../../common/approval-statements';
import { parseSshPublicKey, verifySshSignature } from '../../common/ssh-signature';

/**
 * The workflow's pure-JS SSHSIG verifier and the client's signer against OpenSSH itself:
 * `ssh-keygen -Y sign` signatures verify here, ours verify with `ssh-keygen -Y verify`
 * (git's allowed_signers format), and fingerprints read as `ssh-keygen -l` prints them.
 */
describe('SSH signatures (OpenSSH interoperability)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'runbook-sshsig-'));
  const key = join(dir, 'alice');
  const other = join(dir, 'mallory');
  const message = '{"approver":"alice","verdict":"approve"}';
  beforeAll(() => {
    for (const path of [key, other]) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test', '-f', path]);
    writeFileSync(join(dir, 'message'), message);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const publicKey = () => readFileSync(`${key}.pub`, 'utf8');

  test('ssh-keygen -Y sign is verified in pure JS; other messages, keys and namespaces are not', () => {
    execFileSync('ssh-keygen', ['-Y', 'sign', '-f', key, '-n', signatureNamespace, join(dir, 'message')], { stdio: 'pipe' });
    const signature = readFileSync(join(dir, 'message.sig'), 'utf8');
    const fingerprint = execFileSync('ssh-keygen', ['-l', '-f', `${key}.pub`], { encoding: 'utf8' }).split(' ')[1];
    expect(verifySshSignature(publicKey(), signatureNamespace, message, signature)).toEqual({ ok: true, fingerprint });
    expect(parseSshPublicKey(publicKey()).fingerprint).toBe(fingerprint);
    expect(verifySshSignature(publicKey(), signatureNamespace, `${message} `, signature)).toEqual({ ok: false, reason: `the signature does not verify with key ${fingerprint}` });
    expect(verifySshSignature(readFileSync(`${other}.pub`, 'utf8'), signatureNamespace, message, signature)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^signed by key SHA256:\S+, not by the configured key SHA256:/),
    });
    expect(verifySshSignature(publicKey(), 'git', message, signature)).toEqual({ ok: false, reason: `signed for namespace "${signatureNamespace}", not "git"` });
    expect(verifySshSignature(publicKey(), signatureNamespace, message, 'not a signature')).toMatchObject({ ok: false, reason: expect.stringMatching(/^malformed signature/) });
  });

  test('the client signer makes signatures ssh-keygen -Y verify accepts, and reads the public key of its key file', async () => {
    const signature = await keyFileSigner(key)(message, 'alice');
    writeFileSync(join(dir, 'ours.sig'), `${signature}\n`);
    writeFileSync(join(dir, 'allowed_signers'), `alice ${publicKey()}`);
    const verified = execFileSync('ssh-keygen', ['-Y', 'verify', '-f', join(dir, 'allowed_signers'), '-I', 'alice', '-n', signatureNamespace, '-s', join(dir, 'ours.sig')], {
      input: message,
      encoding: 'utf8',
    });
    expect(verified).toMatch(/^Good "runbook-approval" signature for alice with ED25519 key SHA256:/);
    expect(publicKeyOfKeyFile(key)).toBe(publicKey().trim().split(' ').slice(0, 2).join(' '));
  });

  test('generated key pairs are well formed (ssh2 mangles about one in 256; those are drawn again) and sign what verifies', async () => {
    const pairs = Array.from({ length: 1024 }, (_, i) => generateEd25519KeyPair(`k${i}`));
    for (const pair of pairs) expect(parseSshPublicKey(pair.public).key.length).toBe(32);
    for (const pair of pairs.slice(0, 8)) {
      const signature = await privateKeySigner(pair.private)(message, 'x');
      expect(verifySshSignature(pair.public, signatureNamespace, message, signature)).toMatchObject({ ok: true });
    }
  });

  test('keys that are not Ed25519 are refused with a sentence', () => {
    execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', join(dir, 'rsa')]);
    expect(() => parseSshPublicKey(readFileSync(join(dir, 'rsa.pub'), 'utf8'))).toThrow('expected an OpenSSH public key "ssh-ed25519 AAAA..."');
    expect(() => keyFileSigner(join(dir, 'rsa'))).toThrow('only ssh-ed25519 keys can sign approvals (got ssh-rsa)');
  });
});
