"""gunicorn settings for the `web` process (`gunicorn -c gunicorn.conf.py wsgi:app`).

gunicorn answers requests it cannot parse (URL or headers too large, bad request line) itself,
before Flask sees them, with an HTML page; the contract wants JSON errors everywhere, so its
error writer is replaced by one that writes the API's error body and security headers.
"""

import json
import os

import gunicorn.util

from app.errors import error_body

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "8"))
accesslog = "-"
limit_request_line = 8190
limit_request_field_size = 8190


def write_json_error(sock, status_int, reason, mesg):
    body = json.dumps(error_body(status_int, f"{reason}: {mesg}" if mesg else reason)).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"
        "Referrer-Policy: no-referrer\r\n\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


gunicorn.util.write_error = write_json_error
