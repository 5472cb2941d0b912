"""Real processes for the tests: Celery workers and beat as the Procfile starts them, the engine fleet, gunicorn."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


LOG_DIR = ROOT / ".data" / "test-logs"


def log_file(name: str):
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return open(LOG_DIR / f"{name}.log", "ab")


CELERY = [sys.executable, "-m", "celery", "-A", "celery_app"]


class WorkerProcess:
    """A real `celery worker` (or `celery beat`) process, started as the Procfile would."""

    def __init__(self, name: str, queues: str, concurrency: int = 1):
        self.name, self.queues, self.concurrency = name, queues, concurrency
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [
            *CELERY,
            "worker",
            "-Q",
            self.queues,
            "--concurrency",
            str(self.concurrency),
            "--prefetch-multiplier",
            "1",
            "-n",
            f"{self.name}@test",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ]

    def environment(self) -> dict[str, str]:
        return os.environ.copy()

    def start(self) -> "WorkerProcess":
        self.launch()
        try:
            self.wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def launch(self) -> None:
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=self.environment(),
            stdout=log_file(f"worker-{self.name}"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        import redis
        from celery import Celery

        from config import Config

        pinger = Celery("test-ping")
        pinger.config_from_object(Config.from_env().CELERY)

        def answered():
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited; see {LOG_DIR}")
            try:
                return pinger.control.ping(destination=[f"{self.name}@test"], timeout=0.5)
            except (ConnectionError, OSError, redis.RedisError):  # a broker connection that died: retried
                return None

        eventually(answered, timeout)

    def kill(self) -> None:
        """SIGKILL the worker and its pool children, as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class EngineProcess(WorkerProcess):
    """One engine process as the Procfile starts it (`python -m workers.run_engine`): process
    `index` of `processes`, consuming its share of the shard queues."""

    def __init__(self, index: int = 0, processes: int = 1, env: dict[str, str] | None = None):
        super().__init__(f"engine{index}", "")
        self.index, self.processes, self.extra_env = index, processes, env or {}

    def environment(self) -> dict[str, str]:
        engine = {"ENGINE_INDEX": str(self.index), "ENGINE_PROCESSES": str(self.processes)}
        return {**os.environ, **engine, **self.extra_env}

    def command(self) -> list[str]:
        options = ["-n", f"{self.name}@test", "--without-gossip", "--without-mingle", "--loglevel", "INFO"]
        return [sys.executable, "-m", "workers.run_engine", *options]


class EngineFleet:
    """Engine processes splitting the shards between them, started, killed and stopped together."""

    def __init__(self, processes: int = 2, env: dict[str, str] | None = None):
        self.engines = [EngineProcess(index, processes, env) for index in range(processes)]

    def start(self) -> "EngineFleet":
        for engine in self.engines:
            engine.launch()
        try:
            for engine in self.engines:
                engine.wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def kill(self) -> None:
        for engine in self.engines:
            if engine.process is not None and engine.process.poll() is None:
                engine.kill()

    def revive(self) -> None:
        """Start again any engine a test stopped or killed and did not bring back."""
        for engine in self.engines:
            if engine.process is None or engine.process.poll() is not None:
                engine.start()

    def stop(self) -> None:
        for engine in self.engines:
            engine.stop()


class BeatProcess(WorkerProcess):
    def __init__(self):
        super().__init__("beat", "")

    def command(self) -> list[str]:
        return [
            *CELERY,
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(ROOT / ".data" / "test-celerybeat-schedule"),
        ]

    def wait_ready(self, timeout: float = 60) -> None:
        time.sleep(0.5)
        if self.process.poll() is not None:
            raise RuntimeError(f"beat exited; see {LOG_DIR}")


class WebServer:
    """The `web` process as the Procfile runs it (gunicorn, gunicorn.conf.py), restartable on its port."""

    def __init__(self, port: int | None = None, workers: int = 1, env: dict[str, str] | None = None):
        from devstack import free_port

        self.port = port or free_port()
        self.extra_env = env or {}
        self.workers = workers
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "WebServer":
        from devstack import wait_for_http

        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "gunicorn.conf.py",
                "wsgi:app",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--graceful-timeout",
                "1",
            ],
            cwd=ROOT,
            env={**os.environ, **self.extra_env},
            stdout=log_file("web"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_http(f"{self.url}/api/v1/supportedAssets")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
