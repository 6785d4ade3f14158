import { redacted, scrubForEvidence } from '../../common/evidence-scrub';

describe('scrubForEvidence', () => {
  const sentinel = 'SENTINEL-unit-0001';

  test('literal env values go, names and valueFrom references stay, in every container list', () => {
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'app', annotations: { 'kubectl.kubernetes.io/last-applied-configuration': `{"env":"${sentinel}"}`, 'deployment.kubernetes.io/revision': '3' } },
      spec: {
        template: {
          spec: {
            initContainers: [{ name: 'init', env: [{ name: 'SEED', value: sentinel }] }],
            containers: [
              {
                name: 'app',
                image: 'app:1',
                args: [`--db=postgres://app:${sentinel}@db:5432/x`],
                env: [
                  { name: 'DATABASE_URL', value: `postgres://u:${sentinel}@db:5432/app` },
                  { name: 'LOG_LEVEL', value: 'info' },
                  { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'app-secrets', key: 'DATABASE_PASSWORD' } } },
                ],
              },
            ],
          },
        },
      },
    };
    const scrubbed = scrubForEvidence(deployment);
    expect(JSON.stringify(scrubbed)).not.toContain(sentinel);
    expect(scrubbed.metadata.annotations).toEqual({ 'deployment.kubernetes.io/revision': '3' });
    expect(scrubbed.spec.template.spec.containers[0]!.env).toEqual([
      { name: 'DATABASE_URL', value: redacted },
      { name: 'LOG_LEVEL', value: redacted },
      { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'app-secrets', key: 'DATABASE_PASSWORD' } } },
    ]);
    expect(scrubbed.spec.template.spec.initContainers[0]!.env).toEqual([{ name: 'SEED', value: redacted }]);
    expect(scrubbed.spec.template.spec.containers[0]!.args).toEqual(['--db=postgres://***@db:5432/x']);
    expect(deployment.spec.template.spec.containers[0]!.env[0]!.value).toContain(sentinel); // the input is not changed
  });

  test('ConfigMap values that are credentials by key or carry user:password@ go; the rest stays', () => {
    const configMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'app-config' },
      data: {
        api_token: sentinel,
        DB_PASSWORD: sentinel,
        client_secret: sentinel,
        SENTRY_DSN: sentinel,
        signing_key: sentinel,
        upstream: `https://bot:${sentinel}@api.example/v1`,
        redis: `redis://:${sentinel}@redis:6379/0`,
        LOG_LEVEL: 'info',
        PUBLIC_URL: 'https://short-drama.example.com/path',
      },
      binaryData: { 'creds.bin': Buffer.from(`amqp://user:${sentinel}@mq`).toString('base64'), 'logo.png': Buffer.from('PNG').toString('base64') },
    };
    const scrubbed = scrubForEvidence(configMap);
    expect(JSON.stringify(scrubbed)).not.toContain(sentinel);
    expect(scrubbed.data).toEqual({
      api_token: redacted,
      DB_PASSWORD: redacted,
      client_secret: redacted,
      SENTRY_DSN: redacted,
      signing_key: redacted,
      upstream: redacted,
      redis: redacted,
      LOG_LEVEL: 'info',
      PUBLIC_URL: 'https://short-drama.example.com/path',
    });
    expect(scrubbed.binaryData).toEqual({ 'creds.bin': redacted, 'logo.png': Buffer.from('PNG').toString('base64') });
  });

  test('a list of items is scrubbed item by item; data of other kinds is left alone (Secrets never reach evidence)', () => {
    const doc = {
      items: [
        { kind: 'ConfigMap', data: { token: sentinel } },
        { kind: 'Event', data: { token: 'kept' } },
      ],
      note: 'x',
    };
    expect(scrubForEvidence(doc)).toEqual({
      items: [
        { kind: 'ConfigMap', data: { token: redacted } },
        { kind: 'Event', data: { token: 'kept' } },
      ],
      note: 'x',
    });
  });
});
