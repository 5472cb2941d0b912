"""One Redis subscription per web process, fanned out to every event stream that process serves
and every request waiting for the engine.

The hub pattern-subscribes once to every channel of its topics (`TOPICS`: a channel, a parser and
how it is delivered), so neither a stream nor a trade request opens a Redis connection of its
own: 500 browsers and every waiting trade cost one subscription per web process. An account's
events (`core.events`, typed) go at once to that account's listeners, parsed only where someone
listens; prices are coalesced per asset (latest wins) and sent at most `PRICE_EVENTS_PER_S` times
a second. Plain threads and queues: under gunicorn's gevent worker they are greenlets.
"""

import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import redis
from flask import current_app

from core import events
from core.keys import ACCOUNT_EVENTS_CHANNEL, PRICE_CHANNEL, STREAM_LISTENERS_KEY, TRADES_CHANNEL
from core.net_events import PublicTrades

log = logging.getLogger(__name__)

PRICE_EVENTS_PER_S = 10
LISTENER_BACKLOG = 1000  # a client this far behind is dropped; it reconnects and refetches
FIRST_SUBSCRIBE_WAIT_S = 1.0
LISTENERS_REPORT_EVERY_S = 5.0  # for /metrics, which sums the reports of every web process


class Delivery(StrEnum):
    ACCOUNT = "account"  # to the listeners of the account its channel names
    COALESCED = "coalesced"  # the latest of each channel, to every listener of prices
    EVERY = "every"  # each one, to every listener of trades


@dataclass(frozen=True)
class Topic:
    """A kind of event: the channels it arrives on (`channel`, a format with one field), how its
    payload is parsed, and to whom it goes."""

    kind: str
    channel: str
    parse: Callable[[str], Any]
    delivery: Delivery

    @property
    def prefix(self) -> str:
        return self.channel.split("{")[0]

    @property
    def pattern(self) -> str:
        return self.prefix + "*"


TOPICS = (
    Topic("account", ACCOUNT_EVENTS_CHANNEL, events.loads, Delivery.ACCOUNT),
    Topic("price", PRICE_CHANNEL, json.loads, Delivery.COALESCED),
    Topic("trades", TRADES_CHANNEL, PublicTrades.loads, Delivery.EVERY),
)


@dataclass(frozen=True)
class Event:
    kind: str  # a topic's kind
    data: Any  # its parsed payload: an `core.events.AccountEvent`, a price's dict


CLOSED = Event("closed", {})


@dataclass(eq=False)
class Listener:
    account: int | None = None  # also receives this account's order events
    prices: bool = True  # receives price events
    trades: bool = False  # receives every market's public trades
    events: queue.Queue = field(default_factory=lambda: queue.Queue(LISTENER_BACKLOG))
    dropped: bool = False  # too far behind: its stream ends, and the client reconnects

    def get(self, timeout: float) -> Event | None:
        """The next event, None after `timeout` without one, CLOSED once the hub dropped this listener."""
        if self.dropped:
            return CLOSED
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None


class Hub:
    def __init__(self, redis_url: str, redis_options: dict | None = None):
        self.redis_url, self.redis_options = redis_url, redis_options or {}
        self.listeners: set[Listener] = set()
        self.by_account: dict[int, set[Listener]] = {}
        self.following_trades: set[Listener] = set()
        self.following_prices: set[Listener] = set()
        self.ready = threading.Event()  # set at the first subscription, for good
        self._unsent: dict[str, Event] = {}  # by channel: the latest of each coalesced channel
        self._sent_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.listeners_key = STREAM_LISTENERS_KEY.format(process=f"{socket.gethostname()}:{os.getpid()}")

    def listen(self, account: int | None = None, prices: bool = True, trades: bool = False) -> Listener:
        """A listener for price events, given an account that account's events, and if asked the
        markets' public trades. The first one starts the hub; until its first subscription,
        listeners wait (briefly) for it, so no event after this is missed."""
        listener = Listener(account, prices, trades)
        with self._lock:
            self._register(listener)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="stream-hub", daemon=True)
                self._thread.start()
        self.ready.wait(FIRST_SUBSCRIBE_WAIT_S)
        return listener

    def _register(self, listener: Listener) -> None:
        self.listeners.add(listener)
        if listener.prices:
            self.following_prices.add(listener)
        if listener.trades:
            self.following_trades.add(listener)
        if listener.account is not None:
            self.by_account.setdefault(listener.account, set()).add(listener)

    def leave(self, listener: Listener) -> None:
        with self._lock:
            self.listeners.discard(listener)
            self.following_trades.discard(listener)
            self.following_prices.discard(listener)
            followers = self.by_account.get(listener.account)
            if followers is not None:
                followers.discard(listener)
                if not followers:
                    del self.by_account[listener.account]

    def follow_prices(self, listener: Listener, prices: bool) -> None:
        """Turn a listener's price events on or off while it listens."""
        with self._lock:
            listener.prices = prices
            if prices and listener in self.listeners:
                self.following_prices.add(listener)
            else:
                self.following_prices.discard(listener)

    def _deliver(self, event: Event, to) -> None:
        for listener in to:
            try:
                listener.events.put_nowait(event)
            except queue.Full:
                log.warning("dropping a stream client %d events behind", LISTENER_BACKLOG)
                self.leave(listener)
                listener.dropped = True

    def _run(self) -> None:
        """Forever: (re)subscribe, dispatch, flush prices; a Redis outage only pauses the streams."""
        while True:
            try:
                client = redis.Redis.from_url(
                    self.redis_url, decode_responses=True, socket_timeout=30, **self.redis_options
                )
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.psubscribe(*(topic.pattern for topic in TOPICS))
                pubsub.get_message(timeout=FIRST_SUBSCRIBE_WAIT_S)  # the confirmation: subscribed from here on
                self.ready.set()
                reported_at = 0.0
                while True:
                    message = pubsub.get_message(timeout=1 / PRICE_EVENTS_PER_S)
                    if message is not None:
                        self._dispatch(message["channel"], message["data"])
                    self._flush_prices()
                    if time.monotonic() - reported_at >= LISTENERS_REPORT_EVERY_S:
                        reported_at = time.monotonic()
                        client.set(self.listeners_key, len(self.listeners), ex=int(3 * LISTENERS_REPORT_EVERY_S))
            except (redis.RedisError, OSError) as exc:
                log.warning("stream hub lost Redis (%s); resubscribing", exc)
                time.sleep(1)

    def _dispatch(self, channel: str, payload: str) -> None:
        """Parse and deliver one message. Every web process receives every account's events, and
        only one of them serves that account: the others drop the event unparsed."""
        topic = next(topic for topic in TOPICS if channel.startswith(topic.prefix))
        if topic.delivery != Delivery.COALESCED:
            with self._lock:
                if topic.delivery == Delivery.ACCOUNT:
                    to = list(self.by_account.get(int(channel.removeprefix(topic.prefix)), ()))
                else:
                    to = list(self.following_trades)
            if to:
                self._deliver(Event(topic.kind, topic.parse(payload)), to)
            return
        event = Event(topic.kind, topic.parse(payload))
        with self._lock:
            self._unsent[channel] = event

    def _flush_prices(self) -> None:
        """Send each coalesced channel's latest event, at most PRICE_EVENTS_PER_S times a second."""
        now = time.monotonic()
        with self._lock:
            due = [c for c in self._unsent if now - self._sent_at.get(c, 0) >= 1 / PRICE_EVENTS_PER_S]
            latest = [self._unsent.pop(channel) for channel in due]
            for channel in due:
                self._sent_at[channel] = now
            to = list(self.following_prices) if latest else []
        for event in latest:
            self._deliver(event, to)


_process_hub_lock = threading.Lock()


def process_hub() -> Hub:
    """This process's hub, made on first use (after gunicorn forked the worker)."""
    with _process_hub_lock:
        if "hub" not in current_app.extensions:
            current_app.extensions["hub"] = Hub(current_app.config["REDIS_URL"], current_app.config["REDIS_OPTIONS"])
        return current_app.extensions["hub"]
