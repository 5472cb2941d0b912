"""The no-op task the benchmark measures Celery against, loaded into the engine worker with -I."""

import json

from celery import shared_task

from app.extensions import redis_client

NOOP_CHANNEL = "bench-noop:{token}"


@shared_task(name="bench.noop")  # sent to an engine shard queue by name of queue
def noop(token: str) -> None:
    """Answer on the same kind of channel the API waits on, and do nothing else."""
    redis_client.publish(NOOP_CHANNEL.format(token=token), json.dumps({"token": token}))
