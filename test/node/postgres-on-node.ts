import { chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { postgresUid } from '../../scripts/testbed/node/node-images';
import type { NodeNames } from '../../scripts/testbed/node/node-names';

/**
 * PostgreSQL as production runs it on the real node: a Deployment (strategy Recreate, so two
 * servers never share the volume) from our image, its data on a hostPath PersistentVolume bound to
 * `postgres-pvc`, the superuser's password from a Secret.
 */
export function postgresObjects(options: { namespace: string; names: NodeNames; image: string; volumeDir: string; podSpecExtras: object }): object[] {
  const { namespace, names, image, volumeDir } = options;
  const volumeName = `${namespace}-postgres`;
  const storageClassName = 'testbed-node-hostpath';
  return [
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'postgres-password', namespace }, stringData: { password: 'node-test-password' } },
    {
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: volumeName },
      spec: {
        capacity: { storage: '1Gi' },
        accessModes: ['ReadWriteOnce'],
        persistentVolumeReclaimPolicy: 'Retain',
        storageClassName,
        hostPath: { path: volumeDir, type: 'Directory' },
        claimRef: { namespace, name: 'postgres-pvc' },
        nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [names.nodeName] }] }] } },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'postgres-pvc', namespace },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName, volumeName, resources: { requests: { storage: '1Gi' } } },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'postgres', namespace },
      spec: {
        replicas: 1,
        strategy: { type: 'Recreate' },
        selector: { matchLabels: { app: 'postgres' } },
        template: {
          metadata: { labels: { app: 'postgres' } },
          spec: {
            ...options.podSpecExtras,
            terminationGracePeriodSeconds: 20,
            securityContext: { runAsUser: postgresUid, runAsGroup: postgresUid },
            containers: [
              {
                name: 'postgres',
                image,
                imagePullPolicy: 'Never',
                env: [{ name: 'POSTGRES_PASSWORD_FILE', value: '/etc/postgres-secret/password' }],
                ports: [{ containerPort: 5432 }],
                readinessProbe: { exec: { command: ['pg_isready', '-h', '/tmp', '-U', 'postgres'] }, periodSeconds: 1 },
                resources: { limits: { memory: '256Mi', cpu: '500m' } },
                volumeMounts: [
                  { name: 'data', mountPath: '/var/lib/postgresql/data' },
                  { name: 'password', mountPath: '/etc/postgres-secret', readOnly: true },
                ],
              },
            ],
            volumes: [
              { name: 'data', persistentVolumeClaim: { claimName: 'postgres-pvc' } },
              { name: 'password', secret: { secretName: 'postgres-password', defaultMode: 0o444 } },
            ],
          },
        },
      },
    },
  ];
}

/** The folder on the node that backs the hostPath volume, owned by PostgreSQL's user (what a provisioner would do). */
export function postgresVolumeDir(names: NodeNames, namespace: string): string {
  const dir = join(names.dir, 'volumes', `${namespace}-postgres`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chownSync(dir, postgresUid, postgresUid);
  return dir;
}
