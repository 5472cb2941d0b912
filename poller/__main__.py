"""`python -m poller`: keep the latest Backpack prices in Redis, tell the engine when they cross
something (`poller.wiring`), and record minute candles in PostgreSQL.

The poller knows no Flask and no engine code: it writes prices through `core.prices`, enqueues
trigger checks by task name through a bare Celery client, and upserts candles with psycopg.
"""

import signal
import threading

import redis
from celery import Celery

from config import Config
from core import logs
from poller.candles import CandleRecorder
from poller.markets import followed_markets
from poller.wiring import wired_poller


def main() -> None:
    config = Config.from_env()
    logs.configure(config.LOG_FORMAT)
    client = redis.Redis.from_url(config.REDIS_URL, decode_responses=True, socket_timeout=5, **config.REDIS_OPTIONS)
    sender = Celery("poller")
    sender.config_from_object(config.CELERY)

    candles = CandleRecorder(config.DATABASE_URL)
    followed = followed_markets(config.DATABASE_URL, config.MARKETS, config.FUNDING_INTERVAL_S)
    poller = wired_poller(
        config.BACKPACK_WS_URL,
        followed.priced,
        client,
        sender,
        candles,
        rest_url=config.BACKPACK_REST_URL,
        silence_s=config.FEED_SILENCE_S,
        marked=followed.marked,
        funding_intervals_ms=followed.funding_intervals_ms,
    )
    recorder = threading.Thread(target=candles.run, args=(poller.stop_event,), name="candles", daemon=True)
    recorder.start()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: poller.stop())
    poller.run()
    recorder.join(5)


if __name__ == "__main__":
    main()
