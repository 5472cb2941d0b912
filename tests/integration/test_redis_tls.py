"""`REDIS_URL=rediss://...` reaches every Redis client of the service, through a real TLS endpoint
with a self-signed certificate, as Heroku's Redis presents one."""

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from config import ROOT

# Every client a process of the service opens, as the app factory and the poller configure them.
CLIENTS = """
import json, redis
from app import create_app
from app.extensions import limiter, redis_client
from app.hub import Hub

app = create_app()
results = {}

def attempt(name, call):
    try:
        call()
        results[name] = "ok"
    except Exception as error:
        results[name] = f"{type(error).__name__}: {error}"

attempt("app", redis_client.ping)
attempt("rate limits", lambda: limiter.storage.incr("tls-check", 10) or None)
hub = Hub(app.config["REDIS_URL"], app.config["REDIS_OPTIONS"])
attempt("stream hub", lambda: redis.Redis.from_url(hub.redis_url, **hub.redis_options).ping())
celery = app.extensions["celery"]
attempt("celery broker", lambda: celery.connection_for_write().ensure_connection(max_retries=1, timeout=3))
print(json.dumps(results))
"""


class TlsTerminator:
    """A TLS endpoint in front of the plain test Redis, with a certificate nobody signed."""

    def __init__(self, target: tuple[str, int], directory: Path):
        key, certificate = str(directory / "key.pem"), str(directory / "cert.pem")
        out = ("-keyout", key, "-out", certificate)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", *out],
            check=True,
            capture_output=True,
        )
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certificate, key)
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            secure = self.context.wrap_socket(client, server_side=True)
        except (ssl.SSLError, OSError):
            client.close()  # the client refused our certificate
            return
        upstream = socket.create_connection(self.target)
        threading.Thread(target=self._pipe, args=(upstream, secure), daemon=True).start()
        self._pipe(secure, upstream)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def tls_redis_url(servers, tmp_path):
    plain = urlsplit(os.environ["REDIS_URL"])
    terminator = TlsTerminator((plain.hostname, plain.port), tmp_path)
    yield f"rediss://127.0.0.1:{terminator.port}{plain.path}"
    terminator.close()


def clients_through(url: str, verify: str) -> dict[str, str]:
    env = {**os.environ, "REDIS_URL": url, "REDIS_TLS_VERIFY": verify}
    done = subprocess.run([sys.executable, "-c", CLIENTS], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_every_client_speaks_tls_and_skips_verification_only_when_told(tls_redis_url):
    unverified = clients_through(tls_redis_url, "false")
    assert unverified == {"app": "ok", "rate limits": "ok", "stream hub": "ok", "celery broker": "ok"}
    verified = clients_through(tls_redis_url, "true")
    assert set(verified) == set(unverified)
    for client, outcome in verified.items():
        assert "certificate verify failed" in outcome or "CERTIFICATE_VERIFY_FAILED" in outcome, (client, outcome)
