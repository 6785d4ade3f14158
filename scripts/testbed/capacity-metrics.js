// Stands in for the kubelet's volume and cAdvisor series and postgres_exporter with the capacity
// series of capacity-model.js at /metrics/<job> (Prometheus scrapes them as jobs kubelet and
// postgres-exporter), continuing the 30-day history Prometheus was backfilled with on its start:
// the monthly review's trends need a month of history, which no test bed can live through. The
// app's own series (http_requests_total, ...) come from the real short-drama-app pods.
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const capacityModel = require('./capacity-model');

const [port, capacityHistoryFile] = process.argv.slice(2);

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
    res.writeHead(404);
    res.end();
  })
  .listen(Number(port), '127.0.0.1');
