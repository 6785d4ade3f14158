// short-drama-app's users, for the test bed with the real node: a steady few requests a second
// through the app's Service (its NodePort on the node address, as users outside the cluster come
// in), so the series Prometheus scrapes from the app's pods are real traffic. Two in three ask for
// the home page (the project count, cached in Redis), one in three for a project of the signed-in
// user (PostgreSQL on every request). A problem of the app's (a locked table, a database down)
// shows in those series as it would in production: errors, latency, cache misses.
// GET /healthz says what was sent and how it was answered.
'use strict';
const http = require('node:http');

const [port, appUrl, rpsText] = process.argv.slice(2);
const rps = Number(rpsText ?? 3);
// user1@example.com owns project 50 (seed-postgres.ts: project i belongs to user 1 + i % 50).
const user = 'user1@example.com';
const ownProject = 50;
// A down or hanging app must not pile up requests: past this many unanswered, a tick sends nothing.
const maxInFlight = 30;
const requestTimeoutMs = 10_000;

const stats = { sent: 0, skipped: 0, inFlight: 0, answered: {}, failed: 0, lastError: undefined };
let session;
let signingIn = false;
let tick = 0;

async function request(path, init = {}) {
  stats.sent += 1;
  stats.inFlight += 1;
  try {
    const response = await fetch(`${appUrl}${path}`, { ...init, signal: AbortSignal.timeout(requestTimeoutMs) });
    stats.answered[response.status] = (stats.answered[response.status] ?? 0) + 1;
    return response;
  } catch (err) {
    stats.failed += 1;
    stats.lastError = String(err?.cause?.message ?? err?.message ?? err);
    return undefined;
  } finally {
    stats.inFlight -= 1;
  }
}

async function signIn() {
  signingIn = true;
  try {
    const response = await request('/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: user }) });
    if (response?.ok) session = (await response.json()).session;
  } finally {
    signingIn = false;
  }
}

async function project() {
  if (!session) return signingIn ? undefined : signIn();
  const response = await request(`/api/projects/${ownProject}`, { headers: { authorization: `Bearer ${session}` } });
  // Sessions expire and databases get restored: a refused session signs in again.
  if (response?.status === 401) session = undefined;
  await response?.arrayBuffer();
  return undefined;
}

function send() {
  tick += 1;
  if (stats.inFlight >= maxInFlight) {
    stats.skipped += 1;
    return;
  }
  const work = tick % 3 === 0 ? project() : request('/').then((r) => r?.arrayBuffer());
  work.catch((err) => {
    stats.lastError = String(err?.message ?? err);
  });
}

setInterval(send, 1000 / rps);

http
  .createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ appUrl, rps, signedIn: session !== undefined, ...stats }));
    }
    res.writeHead(404);
    return res.end();
  })
  .listen(Number(port), '127.0.0.1');
