"""Waiting for the engine: a request that handed work to the engine waits for the account event
the engine publishes after its commit (`core.keys.ACCOUNT_EVENTS_CHANNEL`), up to TRADE_WAIT_S.

It subscribes before reading the row, so a result committed in between is never missed; if Redis
is unreachable the work is still accepted and the row is polled instead.
"""

import json
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from flask import current_app

from app.extensions import db, redis_client
from core.keys import ACCOUNT_EVENTS_CHANNEL

log = logging.getLogger(__name__)
POLL_INTERVAL_S = 0.1
Row = TypeVar("Row")


def wait_for_engine(
    user_id: int, field: str, value: str, reload: Callable[[], Row], done: Callable[[Row], bool]
) -> tuple[Row, str | None]:
    """The row once `done(row)`, or when TRADE_WAIT_S ran out, with the engine's error if it sent one
    in an event whose `field` is `value`."""
    deadline = time.monotonic() + current_app.config["TRADE_WAIT_S"]
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(ACCOUNT_EVENTS_CHANNEL.format(user_id=user_id))
    except redis.RedisError:
        log.warning("Redis unavailable: polling %s %s instead of waiting for its event", field, value)
        pubsub.close()
        pubsub = None
    try:
        while True:
            db.session.rollback()  # end the snapshot: see what the engine committed
            row = reload()
            if done(row):
                return row, None
            event = _next_event(pubsub, field, value, deadline)
            if event is None and time.monotonic() >= deadline:
                return row, None
            if event and event.get("error"):
                return row, event["error"]
    finally:
        if pubsub is not None:
            pubsub.close()


def _next_event(pubsub, field: str, value: str, deadline: float) -> dict | None:
    """The next event about `value` before the deadline (None on timeout or, when polling, after a while)."""
    while (remaining := deadline - time.monotonic()) > 0:
        if pubsub is None:
            time.sleep(min(remaining, POLL_INTERVAL_S))
            return None
        try:
            message = pubsub.get_message(timeout=remaining)
        except redis.RedisError:
            time.sleep(min(remaining, POLL_INTERVAL_S))
            return None
        if message is None:
            continue
        event = json.loads(message["data"])
        if event.get(field) == value:
            return event
    return None
