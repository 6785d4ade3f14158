"""short-drama-app as the test bed's real node runs it (image "short-drama-app", node-images.ts).

A small stand-in for the manual's application, real where the runbooks look: HTTP on 8000,
GET /health (200 when PostgreSQL and Redis answer, else 503 naming which does not), GET /metrics
(the manual's metric names, counted from real requests: Prometheus scrapes every pod), GET / (the
project count, cached in Redis for CACHE_TTL_SECONDS, from PostgreSQL on a miss), POST /login
{"email"} (a session for a known user, else 401 and a "login failed" line) and GET
/api/projects/<id> with "Authorization: Bearer <session>" (401 without a live session, 403 for
another user's project). It logs in to PostgreSQL as its own role with the password from its
Secret (env DATABASE_PASSWORD) through a pool of at most DB_POOL_SIZE connections
(database_connections_active counts them), every statement under a timeout (a query that waits
past it logs "ERROR database timeout" and answers 504), and writes one line per request: the
lines the checklists grep for.

Switches (env, usually from the ConfigMap), to induce the manual's faults for real:
  REQUIRED_CONFIG=KEY,...   exit 1 with "FATAL missing config key KEY" when one is unset
  LEAK_CONNECTIONS=N        open N PostgreSQL sessions on start and never close them
  ALLOCATE_MEMORY_MIB=N     hold N MiB (touched) from the start: over the limit, the kernel OOM-kills it
"""

import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import psycopg2.errors
import redis

RELEASE = os.environ.get("APP_RELEASE", "unknown")
STATEMENT_TIMEOUT_MS = int(os.environ.get("DATABASE_STATEMENT_TIMEOUT_MS", "2000"))
BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10]
POOL_SIZE = int(os.environ.get("DB_POOL_SIZE", "20"))
POOL_MIN = 2
POOL_IDLE_SECONDS = 30
CACHE_TTL_SECONDS = int(os.environ.get("CACHE_TTL_SECONDS", "20"))


log_lock = threading.Lock()


def log(line):
    # One line at a time: request threads writing at once would run their lines together.
    with log_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def require_config():
    for key in filter(None, os.environ.get("REQUIRED_CONFIG", "").split(",")):
        if not os.environ.get(key.strip()):
            log(f"FATAL missing config key {key.strip()}: set it in ConfigMap app-config")
            sys.exit(1)


def service_address(host_key, default_host, default_port):
    """A Service by name, through the variables Kubernetes puts in every pod (the node runs no DNS)."""
    name = os.environ.get(host_key, default_host)
    prefix = name.upper().replace("-", "_")
    return os.environ.get(f"{prefix}_SERVICE_HOST", name), int(os.environ.get(f"{prefix}_SERVICE_PORT", default_port))


def database_connect():
    host, port = service_address("DATABASE_HOST", "postgres", 5432)
    return psycopg2.connect(
        host=host,
        port=port,
        dbname=os.environ.get("DATABASE_NAME", "short_drama_prod"),
        user=os.environ.get("DATABASE_USER", "short_drama_app"),
        password=os.environ.get("DATABASE_PASSWORD", ""),
        application_name="short-drama-app",
        connect_timeout=3,
        options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
    )


def redis_client():
    host, port = service_address("REDIS_HOST", "redis", 6379)
    return redis.Redis(
        host=host,
        port=port,
        password=os.environ.get("REDIS_PASSWORD") or None,
        socket_timeout=3,
        socket_connect_timeout=3,
    )


class Pool:
    """PostgreSQL connections kept open between requests, as an app's pool does: at most POOL_SIZE
    (a request past that waits for one), POOL_MIN kept warm, others closed after POOL_IDLE_SECONDS
    idle. A connection the server ended (a restart, pg_terminate_backend) is replaced once."""

    def __init__(self):
        self.cond = threading.Condition()
        self.idle = []  # (connection, returned at)
        self.open = 0

    def connections(self):
        with self.cond:
            return self.open

    def _connect(self):
        try:
            return database_connect()
        except Exception:
            with self.cond:
                self.open -= 1
                self.cond.notify()
            raise

    def take(self):
        with self.cond:
            while not self.idle and self.open >= POOL_SIZE:
                self.cond.wait()
            if self.idle:
                return self.idle.pop()[0]
            self.open += 1
        return self._connect()

    def give(self, conn, broken=False):
        if broken or conn.closed:
            try:
                conn.close()
            finally:
                with self.cond:
                    self.open -= 1
                    self.cond.notify()
            return
        with self.cond:
            self.idle.append((conn, time.monotonic()))
            self.cond.notify()

    def warm(self):
        while self.connections() < POOL_MIN:
            with self.cond:
                self.open += 1
            self.give(self._connect())

    def shrink(self):
        """Closes connections idle for POOL_IDLE_SECONDS beyond the warm ones."""
        now = time.monotonic()
        with self.cond:
            stale = [c for c, at in self.idle if now - at > POOL_IDLE_SECONDS][: max(0, self.open - POOL_MIN)]
            self.idle = [(c, at) for c, at in self.idle if c not in stale]
        for conn in stale:
            self.give(conn, broken=True)

    def run(self, work):
        """work(cursor) in a transaction on a pooled connection. Idle connections outlive database
        restarts and terminations: one the server ended is dropped with the other idle ones, and the
        work runs once more on a fresh connection."""
        for attempt in (1, 2):
            conn = self.take()
            try:
                with conn, conn.cursor() as cur:  # committed on leaving the block, rolled back on an error
                    result = work(cur)
            except psycopg2.errors.QueryCanceled:
                self.give(conn)  # a statement timeout leaves the connection usable
                raise
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self.give(conn, broken=True)
                self.drop_idle()
                if attempt == 2:
                    raise
                continue
            except Exception:
                self.give(conn, broken=conn.closed != 0)
                raise
            self.give(conn)
            return result
        raise RuntimeError("unreachable")

    def drop_idle(self):
        with self.cond:
            idle, self.idle = self.idle, []
        for conn, _ in idle:
            self.give(conn, broken=True)


pool = Pool()


class Metrics:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.errors = 0
        self.hits = 0
        self.misses = 0
        self.duration_sum = 0.0
        self.bucket_counts = [0] * len(BUCKETS)

    def observe(self, status, seconds):
        with self.lock:
            self.requests += 1
            if status >= 500:
                self.errors += 1
            self.duration_sum += seconds
            for i, le in enumerate(BUCKETS):
                if seconds <= le:
                    self.bucket_counts[i] += 1

    def text(self):
        label = 'app="short-drama-app"'
        with self.lock:
            lines = [
                "# TYPE http_requests_total counter",
                f"http_requests_total{{{label}}} {self.requests}",
                "# TYPE http_requests_errors_total counter",
                f"http_requests_errors_total{{{label}}} {self.errors}",
                "# TYPE http_request_duration_seconds histogram",
                *[f'http_request_duration_seconds_bucket{{{label},le="{le}"}} {n}' for le, n in zip(BUCKETS, self.bucket_counts)],
                f'http_request_duration_seconds_bucket{{{label},le="+Inf"}} {self.requests}',
                f"http_request_duration_seconds_sum{{{label}}} {self.duration_sum}",
                f"http_request_duration_seconds_count{{{label}}} {self.requests}",
                "# TYPE cache_hits_total counter",
                f"cache_hits_total{{{label}}} {self.hits}",
                "# TYPE cache_misses_total counter",
                f"cache_misses_total{{{label}}} {self.misses}",
                "# TYPE database_connections_active gauge",
                f"database_connections_active{{{label}}} {pool.connections() + len(leaked)}",
            ]
        return "\n".join(lines) + "\n"


metrics = Metrics()
leaked = []


def check_health():
    problems = {}
    try:
        conn = database_connect()
        try:
            conn.cursor().execute("SELECT 1")
        finally:
            conn.close()
    except Exception as err:  # the reason goes to the caller; the password never does
        problems["database"] = f"unreachable: {str(err).strip().splitlines()[0]}"
    try:
        redis_client().ping()
    except Exception as err:
        problems["redis"] = f"unreachable: {err}"
    return problems


def home():
    """The project count, cache-aside: from Redis while the cached value lives, else from PostgreSQL."""
    r = redis_client()
    cached = r.get("cache:projects:count")
    with metrics.lock:
        if cached is not None:
            metrics.hits += 1
        else:
            metrics.misses += 1
    if cached is not None:
        return {"release": RELEASE, "projects": int(cached), "cached": True}

    def count(cur):
        cur.execute("SELECT count(*) FROM projects")
        return cur.fetchone()[0]

    projects = pool.run(count)
    r.set("cache:projects:count", projects, ex=CACHE_TTL_SECONDS)
    return {"release": RELEASE, "projects": projects, "cached": False}


def login(body, client):
    email = str(body.get("email", ""))[:200]

    def sign_in(cur):
        cur.execute("SELECT id FROM users WHERE email = %s", (email,))
        user = cur.fetchone()
        if not user:
            return None
        session = f"session-{uuid.uuid4()}"
        cur.execute("INSERT INTO sessions (id, user_id, expires_at) VALUES (%s, %s, now() + interval '1 day')", (session, user[0]))
        return session

    session = pool.run(sign_in)
    if not session:
        log(f"WARN login failed for {json.dumps(email)} from {client}")  # quoted: a login name never forges a line
        return 401, {"error": "unknown user"}
    return 200, {"session": session}


def project(authorization, project_id):
    token = authorization.removeprefix("Bearer ").strip()

    def lookup(cur):
        cur.execute("SELECT user_id FROM sessions WHERE id = %s AND expires_at > now()", (token,))
        session = cur.fetchone()
        if not session:
            return 401, {"error": "no live session"}
        cur.execute("SELECT user_id, name FROM projects WHERE id = %s", (project_id,))
        found = cur.fetchone()
        if not found:
            return 404, {"error": "no such project"}
        if found[0] != session[0]:
            return 403, {"error": "another user's project"}
        return 200, {"id": project_id, "name": found[1]}

    return pool.run(lookup)


class Handler(BaseHTTPRequestHandler):
    def send(self, status, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return status

    def do_GET(self):
        self.answer(self.route_get)

    def do_POST(self):
        self.answer(self.route_post)

    def route_get(self):
        if self.path == "/metrics":
            return self.send(200, metrics.text(), "text/plain; version=0.0.4")
        if self.path in ("/health", "/healthz"):
            problems = check_health()
            if problems:
                log(f"ERROR health check failed: {'; '.join(f'{k} {v}' for k, v in problems.items())}")
                return self.send(503, {"status": "unhealthy", "release": RELEASE, **problems})
            return self.send(200, {"status": "ok", "release": RELEASE, "database": "reachable", "redis": "reachable"})
        if self.path == "/":
            return self.send(200, home())
        found = re.fullmatch(r"/api/projects/(\d+)", self.path)
        if found:
            return self.send(*project(self.headers.get("Authorization", ""), int(found.group(1))))
        return self.send(404, {"error": "not found"})

    def route_post(self):
        if self.path == "/login":
            length = min(int(self.headers.get("Content-Length") or 0), 65536)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return self.send(400, {"error": "the body is not JSON"})
            return self.send(*login(body if isinstance(body, dict) else {}, self.client_address[0]))
        return self.send(404, {"error": "not found"})

    def answer(self, route):
        started = time.monotonic()
        try:
            status = route()
        except psycopg2.errors.QueryCanceled:
            log(f"ERROR database timeout after {STATEMENT_TIMEOUT_MS}ms on {self.command} {self.path}")
            status = self.send(504, {"error": "database timeout"})
        except Exception as err:
            log(f"ERROR {self.command} {self.path}: {err}")
            status = self.send(500, {"error": str(err)})
        elapsed = time.monotonic() - started
        if self.path not in ("/metrics", "/health", "/healthz"):  # the API's requests, not probes and scrapes
            metrics.observe(status, elapsed)
        if self.path != "/metrics":
            log(f"{self.command} {self.path} {status} {round(elapsed * 1000)}ms")

    def log_message(self, format, *args):  # one line per request is written by do_GET
        pass


def keep_pool():
    while True:
        time.sleep(5)
        try:
            pool.shrink()
            pool.warm()  # after a database restart, the warm connections come back
        except Exception:
            pass  # the next request says what is wrong


def main():
    # PID 1 in its container: without a handler the kernel ignores SIGTERM and the pod waits out its grace period.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    require_config()
    allocate = int(os.environ.get("ALLOCATE_MEMORY_MIB", "0"))
    if allocate:
        # Before the allocation: the last line an OOM-killed instance leaves in its (previous) log.
        log(f"allocating {allocate} MiB (ALLOCATE_MEMORY_MIB)")
    ballast = bytearray(allocate * 1024 * 1024)
    for i in range(0, len(ballast), 4096):  # touched, so it is resident and counts against the limit
        ballast[i] = 1
    if ballast:
        log(f"holding {len(ballast) // (1024 * 1024)} MiB")
    for _ in range(int(os.environ.get("LEAK_CONNECTIONS", "0"))):
        try:
            leaked.append(database_connect())
        except Exception as err:
            log(f"ERROR could not open a connection: {err}")
            break
    if leaked:
        log(f"leaking {len(leaked)} database connections (LEAK_CONNECTIONS)")
    host, port = service_address("DATABASE_HOST", "postgres", 5432)
    try:
        pool.warm()
        log(f"connected to postgres at {host}:{port} (pool of up to {POOL_SIZE})")
    except Exception as err:
        log(f"ERROR cannot connect to postgres at {host}:{port}: {str(err).strip().splitlines()[0]}")
    threading.Thread(target=keep_pool, daemon=True).start()
    server = ThreadingHTTPServer(("0.0.0.0", 8000), Handler)
    log(f"short-drama-app {RELEASE} listening on :8000")
    server.serve_forever()


if __name__ == "__main__":
    main()
