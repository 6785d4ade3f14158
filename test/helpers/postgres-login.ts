import { Client } from 'pg';
import { testbedEnv } from './testbed';

/** Whether a fresh connection to the test bed's PostgreSQL as the role with this password gets in (false on a wrong password). */
export async function logsIn(role: string, password: string): Promise<boolean> {
  const url = new URL(testbedEnv().DATABASE_URL!);
  url.username = role;
  url.password = encodeURIComponent(password);
  const client = new Client({ connectionString: url.toString(), connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === '28P01') return false;
    throw err;
  } finally {
    await client.end().catch(() => undefined);
  }
}
