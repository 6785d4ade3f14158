// Stands in for short-drama-app's /metrics in the sandbox: the manual's metric names
// (http_requests_total, http_requests_errors_total, http_request_duration_seconds,
// cache_hits_total, cache_misses_total, database_connections_active) with simulated traffic, so
// Prometheus has real series for the manual's PromQL. POST /profile with JSON changes the traffic
// (rps, errorRatio, p95Seconds, cacheHitRatio, dbConnections) to inject a problem; GET /profile shows it.
// It also stands in for the kubelet and postgres_exporter with the capacity series of
// capacity-model.js at /metrics/<job> (Prometheus scrapes them as jobs kubelet and
// postgres-exporter), continuing the history Prometheus was backfilled with on its start.
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const capacityModel = require('./capacity-model');

const [port, capacityHistoryFile] = process.argv.slice(2);
const buckets = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10];
const healthy = { rps: 50, errorRatio: 0.002, p95Seconds: 0.3, cacheHitRatio: 0.92, dbConnections: 12 };
let profile = { ...healthy };
const state = { requests: 0, errors: 0, hits: 0, misses: 0, sum: 0, bucketCounts: buckets.map(() => 0), last: Date.now() };

/** Requests since the last advance: 95 % at a fast latency, 5 % at twice the p95, so histogram_quantile(0.95) lands near p95Seconds. */
function advance() {
  const now = Date.now();
  const n = Math.round((profile.rps * (now - state.last)) / 1000);
  state.last = now;
  if (n <= 0) return;
  const fast = Math.round(n * 0.95);
  const slow = n - fast;
  const fastLatency = profile.p95Seconds * 0.5;
  const slowLatency = profile.p95Seconds * 2;
  state.requests += n;
  state.errors += Math.round(n * profile.errorRatio);
  const hits = Math.round(n * profile.cacheHitRatio);
  state.hits += hits;
  state.misses += n - hits;
  state.sum += fast * fastLatency + slow * slowLatency;
  buckets.forEach((le, i) => {
    if (fastLatency <= le) state.bucketCounts[i] += fast;
    if (slowLatency <= le) state.bucketCounts[i] += slow;
  });
}

function metrics() {
  advance();
  const lines = [
    '# TYPE http_requests_total counter',
    `http_requests_total{app="short-drama-app"} ${state.requests}`,
    '# TYPE http_requests_errors_total counter',
    `http_requests_errors_total{app="short-drama-app"} ${state.errors}`,
    '# TYPE http_request_duration_seconds histogram',
    ...buckets.map((le, i) => `http_request_duration_seconds_bucket{app="short-drama-app",le="${le}"} ${state.bucketCounts[i]}`),
    `http_request_duration_seconds_bucket{app="short-drama-app",le="+Inf"} ${state.requests}`,
    `http_request_duration_seconds_sum{app="short-drama-app"} ${state.sum}`,
    `http_request_duration_seconds_count{app="short-drama-app"} ${state.requests}`,
    '# TYPE cache_hits_total counter',
    `cache_hits_total{app="short-drama-app"} ${state.hits}`,
    '# TYPE cache_misses_total counter',
    `cache_misses_total{app="short-drama-app"} ${state.misses}`,
    '# TYPE database_connections_active gauge',
    `database_connections_active{app="short-drama-app"} ${profile.dbConnections}`,
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * The anchor of the backfilled history ({ originMs, endMs }), read on every scrape: a Prometheus
 * restart backfills a new history and rewrites it. Undefined before Prometheus first started.
 */
function capacityHistory() {
  if (!capacityHistoryFile || !fs.existsSync(capacityHistoryFile)) return undefined;
  // Written by rename, so never read half-written.
  return JSON.parse(fs.readFileSync(capacityHistoryFile, 'utf8'));
}

/** The capacity series of one scrape job at the current time, in the text exposition format. */
function capacityMetrics(job, history) {
  const now = Date.now();
  const lines = [];
  for (const [name, series] of Object.entries(capacityModel.capacitySeries)) {
    if (series.job !== job) continue;
    lines.push(`# HELP ${series.metric} ${series.help}`, `# TYPE ${series.metric} ${series.type}`);
    lines.push(`${series.metric}{${capacityModel.labelText(series.labels)}} ${capacityModel.value(name, now, history.originMs)}`);
  }
  return `${lines.join('\n')}\n`;
}

http
  .createServer((req, res) => {
    const url = new URL(req.url, 'http://app');
    if (req.method === 'GET' && url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ capacityJobs: capacityModel.capacityJobs }));
    }
    if (req.method === 'GET' && url.pathname === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      return res.end(metrics());
    }
    const job = url.pathname.startsWith('/metrics/') ? url.pathname.slice('/metrics/'.length) : undefined;
    if (req.method === 'GET' && job !== undefined && capacityModel.capacityJobs.includes(job)) {
      const history = capacityHistory();
      if (!history) {
        // No origin to continue from: the target shows as down instead of inventing a history.
        res.writeHead(503, { 'content-type': 'text/plain' });
        return res.end('no capacity history yet: Prometheus has not been started by the test bed\n');
      }
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      return res.end(capacityMetrics(job, history));
    }
    if (url.pathname === '/profile' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(profile));
    }
    if (url.pathname === '/profile' && req.method === 'POST') {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
          advance();
          profile = body.reset ? { ...healthy } : { ...profile, ...body };
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(profile));
        } catch {
          res.writeHead(400);
          res.end('expected JSON');
        }
      });
      return undefined;
    }
    res.writeHead(404);
    res.end();
  })
  .listen(Number(port), '127.0.0.1');
