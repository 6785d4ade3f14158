// Prometheus' view of short-drama-app's pods, for the test bed with the real node. Debian's
// Prometheus 2.42 is built without Kubernetes service discovery (`kubernetes_sd_configs` is an
// unknown field there), so this serves what it would have found, in Prometheus' HTTP service
// discovery format (http_sd_configs): every Running pod of the app in the namespace, on its
// container port named `http`, labelled with its namespace and pod, read from the Kubernetes API
// as ServiceAccount `prometheus` (which may only list the namespace's pods), through the kubeconfig
// the cluster's seed writes. GET /targets answers [] until that kubeconfig exists.
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');

const [port, kubeconfigFile, namespace, selector] = process.argv.slice(2);

/** The apiserver, its CA and the account's token, from the kubeconfig (JSON, written by kubernetes-pki.ts). */
function access() {
  if (!fs.existsSync(kubeconfigFile)) return undefined;
  const config = JSON.parse(fs.readFileSync(kubeconfigFile, 'utf8'));
  const { cluster } = config.clusters[0];
  return { server: cluster.server, ca: fs.readFileSync(cluster['certificate-authority']), token: config.users[0].user.token };
}

function listPods({ server, ca, token }) {
  const url = new URL(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`, server);
  url.searchParams.set('labelSelector', selector);
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, headers: { authorization: `Bearer ${token}` }, timeout: 5000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) return reject(new Error(`listing pods: HTTP ${res.statusCode}: ${body.slice(0, 200)}`));
        return resolve(JSON.parse(body).items);
      });
    });
    req.on('timeout', () => req.destroy(new Error('listing pods: timed out')));
    req.on('error', reject);
  });
}

/** One target group per Running pod with an address: its `http` container port. */
function targetGroups(pods) {
  return pods.flatMap((pod) => {
    if (pod.status?.phase !== 'Running' || !pod.status.podIP || pod.metadata.deletionTimestamp) return [];
    const ports = pod.spec.containers.flatMap((c) => c.ports ?? []).filter((p) => p.name === 'http');
    return ports.map((p) => ({ targets: [`${pod.status.podIP}:${p.containerPort}`], labels: { namespace: pod.metadata.namespace, pod: pod.metadata.name } }));
  });
}

http
  .createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ namespace, selector, kubeconfig: fs.existsSync(kubeconfigFile) }));
    }
    if (req.method === 'GET' && req.url === '/targets') {
      const credentials = access();
      if (!credentials) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end('[]');
      }
      listPods(credentials).then(
        (pods) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(targetGroups(pods)));
        },
        // Prometheus keeps the targets it had when discovery fails, as it does when the apiserver is away.
        (err) => {
          res.writeHead(503, { 'content-type': 'text/plain' });
          res.end(`${err.message}\n`);
        },
      );
      return undefined;
    }
    res.writeHead(404);
    return res.end();
  })
  .listen(Number(port), '127.0.0.1');
