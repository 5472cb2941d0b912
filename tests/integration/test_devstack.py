"""`make run` as a platform would run it: every Procfile process supervised and restarted with
backoff when it dies, Flower behind a generated password, and Ctrl-C stopping everything."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from devstack import free_port
from tests.support.processes import ROOT
from tests.support.waiting import eventually

STARTED = re.compile(r"system +\| started (\S+) \(pid (\d+)\)")


class Stack:
    """`python devstack.py run --feed sim --engines 2` (`make run FEED=sim ENGINES=2`), its output
    collected line by line."""

    def __init__(self):
        self.port, self.flower_port = free_port(), free_port()
        env = {**os.environ, "PORT": str(self.port), "FLOWER_PORT": str(self.flower_port)}
        env.pop("FLOWER_BASIC_AUTH", None)
        self.process = subprocess.Popen(
            [sys.executable, "devstack.py", "run", "--feed", "sim", "--engines", "2"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self):
        for line in self.process.stdout:
            self.lines.append(line)

    def pids(self, name: str) -> list[int]:
        return [int(m.group(2)) for line in self.lines if (m := STARTED.search(line)) and m.group(1) == name]

    def all_pids(self) -> list[int]:
        return [int(m.group(2)) for line in self.lines if (m := STARTED.search(line))]

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def health(self) -> dict | None:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/api/v1/health", timeout=2).json()
        except (requests.RequestException, ValueError):
            return None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def stack(app):
    running = Stack()
    yield running
    if running.process.poll() is None:
        os.killpg(running.process.pid, signal.SIGKILL)
        for pid in running.all_pids():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_make_run_restarts_dead_processes_and_ctrl_c_stops_everything(stack):
    eventually(lambda: (stack.health() or {}).get("feed", {}).get("state") == "connected", timeout=90, interval=0.5)
    password = (Path(os.environ.get("DATA_DIR", ROOT / ".data")) / "flower_password").read_text().strip()
    assert stack.said(f"password {password!r}")
    flower = f"http://127.0.0.1:{stack.flower_port}"
    eventually(lambda: requests.get(flower, timeout=2).status_code == 401, timeout=30, interval=0.5)
    assert requests.get(flower, auth=("admin", password), timeout=5).status_code == 200

    poller = stack.pids("poller")[-1]
    os.kill(poller, signal.SIGKILL)
    eventually(lambda: len(stack.pids("poller")) == 2, timeout=20)
    assert stack.said("poller exited with code -9; restarting in 1s")

    engine = stack.pids("engine.2")[-1]
    pool = eventually(lambda: children(engine), timeout=30)
    os.kill(engine, signal.SIGKILL)  # the main process only: its pool child is orphaned
    eventually(lambda: len(stack.pids("engine.2")) == 2, timeout=20)
    assert not any(alive(pid) for pid in pool), "the dead engine's pool child was left running"
    eventually(lambda: (stack.health() or {}).get("feed", {}).get("state") == "connected", timeout=30)

    def both_engines_answer():  # (the test suite's own engines, on this Redis too, are @test)
        engine = (stack.health() or {}).get("engine", {})
        names = [name.split("@")[0] for name in engine.get("detail", "").split(", ") if not name.endswith("@test")]
        return engine.get("ok") and names == ["engine0", "engine1"]

    eventually(both_engines_answer, timeout=30, interval=0.5)

    everything = stack.all_pids()
    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(30) == 0
    eventually(lambda: not any(alive(pid) for pid in everything), timeout=10)
    assert not any(alive(child) for pid in everything for child in children(pid))
