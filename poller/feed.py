"""The Backpack feed: a websocket thread per connection, reconnected forever with backoff.

`Poller.run()` owns the loop: connect, subscribe to every stream, store each quote in Redis,
and on any close, error or silence longer than `silence_s` (a half-open socket sends nothing)
reconnect after an exponential backoff with full jitter, resubscribing everything.
"""

import contextlib
import json
import logging
import random
import socket
import threading
import time

import websocket

from core.prices import FeedStatus, PriceStore
from poller.normalize import BadFrame, parse_frame

log = logging.getLogger(__name__)


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0, min(cap, base * 2**attempt))


class Poller:
    def __init__(
        self,
        url: str,
        markets: list[str],
        redis_client,
        on_quote=None,
        silence_s: float = 20.0,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
    ):
        self.url = url
        self.streams = [f"bookTicker.{market}" for market in markets]
        self.prices = PriceStore(redis_client)
        self.status = FeedStatus(redis_client)
        self.on_quote = on_quote
        self.silence_s = silence_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.stop_event = threading.Event()
        self.connections = 0
        self.frames = 0
        self.bad_frames = 0
        self._last_frame = time.monotonic()
        self._got_data = False
        self._rng = random.Random()

    # websocket callbacks (run on the socket's thread)
    def _on_open(self, ws):
        self.connections += 1
        self._last_frame = time.monotonic()
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": self.streams}))
        self.status.set_state("connected")
        log.info("connected to %s, subscribed to %s", self.url, ", ".join(self.streams))

    def _on_message(self, ws, raw):
        self._last_frame = time.monotonic()
        try:
            quote = parse_frame(raw)
        except BadFrame as exc:
            self.bad_frames += 1
            log.warning("skipping frame: %s", exc)
            return
        if quote is None:
            return
        self._got_data = True
        self.frames += 1
        if self.prices.write(quote) and self.on_quote is not None:
            self.on_quote(quote)

    def _on_ping(self, ws, _payload):
        self._last_frame = time.monotonic()

    def _on_error(self, ws, error):
        log.warning("feed error: %s", error)

    def _connect_once(self) -> None:
        """Run one connection until it closes, errors, or goes silent."""
        ws = websocket.WebSocketApp(
            self.url,
            on_open=self._on_open,
            on_message=self._on_message,
            on_ping=self._on_ping,
            on_error=self._on_error,
        )
        self._last_frame = time.monotonic()
        thread = threading.Thread(
            target=ws.run_forever, kwargs={"skip_utf8_validation": True}, name="backpack-ws", daemon=True
        )
        thread.start()
        while thread.is_alive():
            if self.stop_event.wait(0.2):
                break
            silent_for = time.monotonic() - self._last_frame
            if silent_for > self.silence_s:
                log.warning("no frame for %.1fs: treating the socket as dead", silent_for)
                break
        self._hang_up(ws)
        thread.join(timeout=5)

    @staticmethod
    def _hang_up(ws: websocket.WebSocketApp) -> None:
        """Send a close frame without waiting for the reply, then cut the socket so the reader
        thread stops at once (a half-open peer would never answer the close)."""
        ws.keep_running = False
        connection = ws.sock
        if connection is None or connection.sock is None:
            return
        with contextlib.suppress(Exception):
            connection.send_close()
        with contextlib.suppress(OSError):
            connection.sock.shutdown(socket.SHUT_RDWR)

    def run(self) -> None:
        attempt = 0
        while not self.stop_event.is_set():
            self._got_data = False
            try:
                self.status.set_state("connecting")
                self._connect_once()
            except Exception:  # the feed must outlive anything a connection (or Redis) does
                log.exception("connection failed")
            if self.stop_event.is_set():
                break
            self._record_disconnect()
            attempt = 0 if self._got_data else attempt + 1
            delay = backoff_delay(attempt, self.backoff_base_s, self.backoff_cap_s, self._rng)
            log.info("reconnecting in %.2fs", delay)
            self.stop_event.wait(delay)
        self.status.set_state("stopped")

    def _record_disconnect(self) -> None:
        try:
            self.status.set_state("disconnected")
            self.status.count_reconnect()
        except Exception:
            log.exception("could not record the disconnect in Redis")

    def stop(self) -> None:
        self.stop_event.set()
