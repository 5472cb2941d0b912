"""`python -m poller`: keep the latest Backpack prices in Redis and tell the engine they moved."""
import logging
import signal

import redis

from config import Config
from poller.feed import Poller


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = Config.from_env()
    client = redis.Redis.from_url(config.REDIS_URL, decode_responses=True, socket_timeout=5)

    from workers.engine import request_trigger_check

    poller = Poller(
        config.BACKPACK_WS_URL,
        list(config.BACKPACK_MARKETS),
        client,
        on_quote=lambda quote: request_trigger_check(client, quote.asset),
        silence_s=config.FEED_SILENCE_S,
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: poller.stop())
    poller.run()


if __name__ == "__main__":
    main()
