// The sandbox's notification receiver: stores every JSON POST so tests (and people running
// `npm start`) can see what the runbooks sent. GET /messages lists them, DELETE /messages clears,
// POST /fail-next?count=N answers the next N posts with 503 (to exercise retries).
'use strict';
const http = require('node:http');
const { appendFileSync } = require('node:fs');

const [port, logFile] = process.argv.slice(2);
const messages = [];
let failNext = 0;

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

http
  .createServer(async (req, res) => {
    const url = new URL(req.url, 'http://receiver');
    if (req.method === 'GET' && url.pathname === '/healthz') return send(res, 200, { ok: true });
    if (req.method === 'GET' && url.pathname === '/messages') return send(res, 200, messages);
    if (req.method === 'DELETE' && url.pathname === '/messages') {
      messages.length = 0;
      return send(res, 200, { cleared: true });
    }
    if (req.method === 'POST' && url.pathname === '/fail-next') {
      failNext = Number(url.searchParams.get('count') ?? '1');
      return send(res, 200, { failNext });
    }
    if (req.method === 'POST') {
      const text = await readBody(req);
      if (failNext > 0) {
        failNext--;
        return send(res, 503, { error: 'injected failure' });
      }
      let body;
      try {
        body = JSON.parse(text);
      } catch {
        return send(res, 400, { error: 'expected a JSON body' });
      }
      const message = { path: url.pathname, receivedAt: new Date().toISOString(), headers: { 'content-type': req.headers['content-type'] }, body };
      messages.push(message);
      if (messages.length > 1000) messages.shift();
      if (logFile) appendFileSync(logFile, `${JSON.stringify(message)}\n`);
      return send(res, 200, { ok: true });
    }
    send(res, 404, { error: 'not found' });
  })
  .listen(Number(port), '127.0.0.1');
