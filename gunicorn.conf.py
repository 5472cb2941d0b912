"""gunicorn settings for the `web` process (`gunicorn -c gunicorn.conf.py wsgi:app`).

Worker model: gevent. Every Server-Sent Events client holds its request open for as long as the
page is open; with threads, each would hold a thread (gthread 2 x 8 starves at 16 clients). A
gevent worker serves each request on a greenlet, so one process holds hundreds of streams while
trade requests keep their latency; streams share one Redis subscription per process
(`app.hub`). gunicorn monkey-patches each worker before loading the app, so this file
imports nothing of the app.

gunicorn answers requests it cannot parse (URL or headers too large, bad request line) itself,
before Flask sees them, with an HTML page; the contract wants JSON errors everywhere, so its
error writer is replaced by one that writes the API's error body and security headers.
"""

import gc
import json
import os
import tempfile
from http import HTTPStatus

import gunicorn.util
from gunicorn.glogging import Logger

from core.logs import REQUEST_ID_HEADER, JsonFormatter

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gevent"
worker_connections = int(os.environ.get("WEB_CONNECTIONS", "1000"))
timeout = 60
graceful_timeout = 5  # streams never finish by themselves
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms [%({x-request-id}o)s]'
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")


class ServiceLogger(Logger):
    """gunicorn's own lines in LOG_FORMAT: with `json`, its start-up lines and each access line are
    one JSON object, the access line with the request id the app echoed."""

    def setup(self, cfg):
        super().setup(cfg)
        if LOG_FORMAT == "json":
            for handler in self.error_log.handlers + self.access_log.handlers:
                handler.setFormatter(JsonFormatter())

    def access(self, resp, req, environ, request_time):
        if LOG_FORMAT != "json":
            return super().access(resp, req, environ, request_time)
        if not self.access_log_enabled:
            return None
        atoms = self.atoms(resp, req, environ, request_time)
        request_id = atoms.get("{" + REQUEST_ID_HEADER.lower() + "}o")
        line = f"{atoms['m']} {atoms['U']} {atoms['s']} {atoms['M']}ms"
        self.access_log.info(line, extra={"request_id": request_id})
        return None


logger_class = ServiceLogger

# /metrics adds up the request histograms of every worker (prometheus_client's multiprocess mode):
# set before a worker imports prometheus_client, cleared at each start, a dead worker's gauges dropped.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="paper-metrics-"))
limit_request_line = 8190
limit_request_field_size = 8190
ERROR_CODES = {413: "too_large", 414: "too_large", 431: "too_large", 500: "internal", 501: "validation"}


def write_json_error(sock, status_int, reason, mesg):
    body = {
        "code": status_int,
        "status": HTTPStatus(status_int).phrase,
        "message": f"{reason}: {mesg}" if mesg else reason,
        "error": ERROR_CODES.get(status_int, "validation"),
    }
    payload = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nX-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"
        "Referrer-Policy: no-referrer\r\n\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + payload)


gunicorn.util.write_error = write_json_error


def post_worker_init(worker):
    """Move everything the app loaded into the collector's permanent generation: full collections
    then scan only what requests allocate, not the hundreds of thousands of objects of Flask,
    SQLAlchemy and marshmallow, which cost a request tens of milliseconds whenever one ran."""
    gc.freeze()


def on_starting(server):
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):  # the last run's workers' values
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
