"""`python -m poller`: keep the latest Backpack prices in Redis and tell the engine they moved.

The poller knows no Flask and no engine code: it writes prices through `core.prices` and
enqueues trigger checks by task name through a bare Celery client.
"""

import logging
import signal

import redis
from celery import Celery

from config import Config
from core.tasks import request_trigger_check
from poller.feed import Poller


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = Config.from_env()
    client = redis.Redis.from_url(config.REDIS_URL, decode_responses=True, socket_timeout=5)
    sender = Celery("poller")
    sender.config_from_object(config.CELERY)

    poller = Poller(
        config.BACKPACK_WS_URL,
        list(config.BACKPACK_MARKETS),
        client,
        on_quote=lambda quote: request_trigger_check(client, sender, quote.asset),
        silence_s=config.FEED_SILENCE_S,
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: poller.stop())
    poller.run()


if __name__ == "__main__":
    main()
