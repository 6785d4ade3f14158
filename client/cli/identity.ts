import { userInfo } from 'node:os';

/** Who is acting: --as, then $RUNBOOK_USER, then the OS user. Decisions and starts carry it. */
export function resolveIdentity(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const identity = flag ?? env.RUNBOOK_USER ?? safeOsUser();
  if (!identity?.trim()) throw new Error('cannot tell who you are: pass --as NAME or set RUNBOOK_USER');
  return identity.trim();
}

function safeOsUser(): string | undefined {
  try {
    return userInfo().username;
  } catch {
    return undefined;
  }
}
