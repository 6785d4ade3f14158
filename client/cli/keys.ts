import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Identity } from '../../config/schema';
import { agentSigner, keyFileSigner, type Signer } from '../signing';

export interface ResolvedSigner {
  signer: Signer;
  /** Where the key came from, for messages. */
  source: string;
}

/**
 * The key that signs for `identity`: --key FILE, else ssh-agent ($SSH_AUTH_SOCK; the key
 * configured for the identity when configuration names one, else the agent's first Ed25519
 * key), else the sandbox's demo key for that identity (`.testbed/approver-keys/<id>`) when the
 * CLI talks to the sandbox. None: undefined, and starts and decisions go unsigned.
 */
export async function resolveSigner(identity: string, options: { keyFile?: string; approvers: Identity[]; sandboxKeyDir?: string; env?: NodeJS.ProcessEnv }): Promise<ResolvedSigner | undefined> {
  const env = options.env ?? process.env;
  if (options.keyFile) return { signer: keyFileSigner(options.keyFile), source: options.keyFile };
  const configured = options.approvers.find((a) => a.id === identity)?.publicKey;
  if (env.SSH_AUTH_SOCK) {
    try {
      const { signer } = await agentSigner(env.SSH_AUTH_SOCK, configured);
      return { signer, source: 'ssh-agent' };
    } catch {
      // Not in the agent: try the sandbox's demo key.
    }
  }
  const demoKey = options.sandboxKeyDir && join(options.sandboxKeyDir, identity);
  if (demoKey && existsSync(demoKey)) return { signer: keyFileSigner(demoKey), source: demoKey };
  return undefined;
}
