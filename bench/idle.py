"""The whole stack with nobody trading, as `make run FEED=sim` runs it (web, engine, beat, mailer,
poller, Flower and the simulator ticking three markets every 200 ms): the cores each process keeps
busy. A price move that crosses no trigger level should cost next to nothing."""

import sys
import time

from bench.common import IDLE_S, CpuProfile, start, start_engines, stop
from devstack import free_port, read_procfile, wait_for_http

TICK_S = 0.2
SETTLE_S = 10  # connections made, first sweeps and snapshots past


def bench_idle(env: dict, seconds: float = IDLE_S) -> dict:
    simulator_port, web_port = free_port(), free_port()
    stack_env = {
        **env,
        "BACKPACK_WS_URL": f"ws://127.0.0.1:{simulator_port}",
        "BACKPACK_REST_URL": f"http://127.0.0.1:{simulator_port}",
        "HOST": "127.0.0.1",
        "PORT": str(web_port),
        "FLOWER_PORT": str(free_port()),
        "FLOWER_BASIC_AUTH": "bench:idle",
    }
    simulator = [sys.executable, "-m", "poller.simulator", "--port", str(simulator_port), "--interval", str(TICK_S)]
    procfile = read_procfile()
    processes = [start(simulator, stack_env, "idle-simulator")]
    processes += [
        start(["bash", "-c", f"exec {procfile[name]}"], stack_env, f"idle-{name}")
        for name in ("web", "beat", "mailer", "poller", "flower")
    ]
    processes += start_engines(stack_env, "engine-idle")
    try:
        wait_for_http(f"http://127.0.0.1:{web_port}/api/v1/supportedAssets")
        time.sleep(SETTLE_S)
        print(f"idle stack for {seconds:.0f} s ...", file=sys.stderr)
        with CpuProfile() as profile:
            time.sleep(seconds)
    finally:
        for process in processes:
            stop(process)
    return {"seconds": seconds, "tick_s": TICK_S, "cores": profile.cores}
