"""`python -m poller`: keep the latest Backpack prices in Redis, tell the engine they moved, and
record minute candles in PostgreSQL.

The poller knows no Flask and no engine code: it writes prices through `core.prices`, enqueues
trigger checks by task name through a bare Celery client, and upserts candles with psycopg.
"""

import logging
import signal
import threading

import redis
from celery import Celery

from config import Config
from core.prices import Quote
from core.tasks import request_trigger_check
from poller.candles import CandleRecorder
from poller.feed import Poller


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = Config.from_env()
    client = redis.Redis.from_url(config.REDIS_URL, decode_responses=True, socket_timeout=5)
    sender = Celery("poller")
    sender.config_from_object(config.CELERY)

    candles = CandleRecorder(config.DATABASE_URL)

    def on_quote(quote: Quote) -> None:
        candles.add(quote)
        request_trigger_check(client, sender, quote.asset, config.ENGINE_SHARDS)

    poller = Poller(
        config.BACKPACK_WS_URL,
        list(config.BACKPACK_MARKETS),
        client,
        on_quote=on_quote,
        silence_s=config.FEED_SILENCE_S,
        rest_url=config.BACKPACK_REST_URL,
        # working orders are crossed by the book, not only by its top: check them on every book change
        on_book=lambda asset: request_trigger_check(client, sender, asset, config.ENGINE_SHARDS),
    )
    recorder = threading.Thread(target=candles.run, args=(poller.stop_event,), name="candles", daemon=True)
    recorder.start()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: poller.stop())
    poller.run()
    recorder.join(5)


if __name__ == "__main__":
    main()
