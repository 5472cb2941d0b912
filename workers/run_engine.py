"""`python -m workers.run_engine [celery worker options]`: one engine process, as the Procfile runs it.

It becomes `celery worker` on this process's shard queues (ENGINE_SHARD_SET, or its share as
ENGINE_INDEX, or the dyno number, of ENGINE_PROCESSES) with concurrency 1: the one writer of
those accounts. The worker's own settings see the same shard set, which bounds its batches.
"""

import os
import sys

from config import Config
from core.shards import format_shard_set, shard_queues
from core.tasks import ENGINE_WORKER_PREFIX


def main() -> None:
    config = Config.from_env()
    os.environ["ENGINE_SHARD_SET"] = format_shard_set(config.ENGINE_SHARD_SET)
    queues = ",".join(shard_queues(config.ENGINE_SHARD_SET))
    node = f"{ENGINE_WORKER_PREFIX}{config.ENGINE_INDEX}@%h"
    command = ["-m", "celery", "-A", "celery_app", "worker", "-Q", queues, "-n", node]
    command += ["--concurrency", "1", "--prefetch-multiplier", "1", *sys.argv[1:]]
    os.execv(sys.executable, [sys.executable, *command])


if __name__ == "__main__":
    main()
