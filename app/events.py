"""Waiting for the engine: a request that handed work to the engine waits for the account event
the engine publishes after its commit (`core.events`), up to TRADE_WAIT_S.

The event arrives through the process's hub (`app.hub`: one Redis subscription for every waiting
request and stream), so a trade opens no Redis connection of its own. It listens before it sends
the work (or reads the row), so a result committed in between is never missed; and it reads the
row again every RECHECK_S without an event, so a hub still (re)subscribing after a Redis outage
only slows it.
"""

import time
from collections.abc import Callable
from typing import TypeVar

from flask import current_app

from app.extensions import db
from app.hub import CLOSED, Listener, process_hub
from core.events import AccountEvent, RequestFailed, ResetEnded

RECHECK_S = 0.25
Row = TypeVar("Row")


def _error(event: AccountEvent) -> str | None:
    """Why the engine could not do the work, when the event says it could not."""
    return event.error if isinstance(event, RequestFailed | ResetEnded) else None


def wait_for_engine(
    account_id: int,
    about: Callable[[AccountEvent], bool],
    reload: Callable[[], Row],
    done: Callable[[Row], bool],
    send: Callable[[], object] | None = None,
    from_event: Callable[[AccountEvent], Row | None] = lambda _event: None,
) -> tuple[Row, str | None]:
    """`send()` the work (if given), then the row once `done(row)`, or when TRADE_WAIT_S ran out,
    with the engine's error if an event `about` the work said it failed. Work just sent cannot be
    done yet: the row is first read when its event (or RECHECK_S) comes, unless the event itself
    carries the row as committed (`from_event`)."""
    deadline = time.monotonic() + current_app.config["TRADE_WAIT_S"]
    hub = process_hub()
    listener = hub.listen(account=account_id, prices=False)
    try:
        if send is not None:
            send()
            event = _next_event(listener, about, deadline)
            if event is not None and (error := _error(event)):
                db.session.rollback()
                return reload(), error
            if event is not None and (row := from_event(event)) is not None and done(row):
                return row, None
        while True:
            db.session.rollback()  # end the snapshot: see what the engine committed
            row = reload()
            if done(row):
                return row, None
            event = _next_event(listener, about, deadline)
            if event is None and time.monotonic() >= deadline:
                return row, None
            if event is not None and (error := _error(event)):
                return row, error
    finally:
        hub.leave(listener)


def _next_event(listener: Listener, about: Callable[[AccountEvent], bool], deadline: float) -> AccountEvent | None:
    """The next event `about` the work; None at the deadline, or after RECHECK_S without one."""
    while (remaining := deadline - time.monotonic()) > 0:
        event = listener.get(timeout=min(remaining, RECHECK_S))
        if event is None:
            return None
        if event is CLOSED:  # dropped for falling behind (it cannot, without prices): read the row
            time.sleep(min(remaining, RECHECK_S))
            return None
        if about(event.data):
            return event.data
    return None
