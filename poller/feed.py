"""The Backpack feed: a websocket thread per connection, reconnected forever with backoff.

`Poller.run()` owns the loop: connect, subscribe to every stream, store each market's latest
quote in Redis (a writer thread of its own, every waiting market in one round trip), and on any
close, error or silence longer than `silence_s` (a half-open socket sends nothing)
reconnect after an exponential backoff with full jitter, resubscribing everything.

With a REST URL it also keeps each market's L2 book (`poller.depth`): `depth.<market>` deltas
aligned with a REST snapshot fetched on its own thread, the top levels written to Redis by a
writer thread (every changed book in one round trip), a market resynced alone on a gap. For
perpetuals (`marked`) it keeps each market's mark, index, funding rate and next funding time
(`core.marks`) from `markPrice.<market>`, starting from `/api/v1/markPrices` at each connection.
"""

import contextlib
import json
import logging
import random
import socket
import threading
import time
import urllib.request

import websocket

from core.assets import ASSET_BY_MARKET
from core.book import BookStore
from core.marks import Mark, MarkStore
from core.prices import FeedStatus, PriceStore, Quote, now_micros
from poller.depth import BookGap, DepthBook
from poller.normalize import BadFrame, decode, depth_delta, mark_from, quote_from

SNAPSHOT_LIMIT = "100"  # Backpack takes only its listed limits, as strings
# A writer starts a round trip at most this often: a busy feed's frames coalesce into fewer, larger
# writes (a market's latest value wins) instead of taking the interpreter from the socket thread.
# Quotes carry the top of book and trigger checks: soon. A book is the depth a fill walks beyond
# the top, and serializing it costs more: a little later.
QUOTES_EVERY_S = 0.005
BOOKS_EVERY_S = 0.02
ALIVE_EVERY_S = 2.0

log = logging.getLogger(__name__)


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0, min(cap, base * 2**attempt))


class LatestWriter:
    """Writes each market's latest value to Redis on a thread of its own, so the socket thread
    never waits on Redis: while one write is in flight, newer values replace older ones (latest
    wins), and the next round trip writes every waiting market at once. `prepare(batch)` turns the
    waiting values into what is written (outside every lock of this writer), `write(prepared)`
    stores them and returns the markets it stored, and `on_written(markets)` hears of those once
    they are in Redis (one call a batch, so what it reads it can read for all of them at once).
    A round trip starts at most every `every_s`: a quiet market's value goes at once, a busy
    feed's coalesce.

    A market dropped meanwhile (`drop`: its book resyncing) is not written by the batch that was
    on its way: each drop moves the market to a new epoch, and a value prepared in an older one
    is discarded under the same lock the drop's delete takes, so nothing stale follows a drop."""

    def __init__(self, name: str, write, every_s: float, on_written=None, delete=None, prepare=None):
        self.name, self.write, self.on_written, self.delete = name, write, on_written, delete
        self.every_s = every_s
        self.prepare = prepare or (lambda batch: batch)
        self.pending: dict[str, object] = {}
        self.epochs: dict[str, int] = {}
        self.ready = threading.Condition()
        self.writing = threading.Lock()
        self.busy = False
        self.writes = 0

    def put(self, asset: str, value) -> None:
        with self.ready:
            self.pending[asset] = value
            self.ready.notify()

    def drop(self, *assets: str) -> None:
        with self.ready:
            for asset in assets:
                self.pending.pop(asset, None)
                self.epochs[asset] = self.epochs.get(asset, 0) + 1
        with self.writing:
            self.delete(*assets)

    def idle(self) -> bool:
        with self.ready:
            return not self.pending and not self.busy

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            began = time.monotonic()
            with self.ready:
                while not self.pending and not stop.is_set():
                    self.ready.wait(0.5)
                batch, self.pending, self.busy = self.pending, {}, bool(self.pending)
                epochs = {asset: self.epochs.get(asset, 0) for asset in batch}
            if not batch:
                continue
            try:
                prepared = self.prepare(batch)
                with self.writing:
                    with self.ready:
                        prepared = {a: v for a, v in prepared.items() if self.epochs.get(a, 0) == epochs[a]}
                    stored = self.write(prepared) if prepared else []
                self.writes += 1
            except Exception:  # Redis away: keep what nothing newer replaced, retry
                log.exception("could not write %d %s", len(batch), self.name)
                with self.ready:
                    self.pending = {**batch, **self.pending}
                stop.wait(0.5)
                continue
            finally:
                with self.ready:
                    self.busy = False
            if self.on_written is not None and stored:
                try:
                    self.on_written(stored)
                except Exception:  # a failed trigger check must not stop the writes: the sweep repeats it
                    log.exception("after writing %d %s", len(stored), self.name)
            stop.wait(self.every_s - (time.monotonic() - began))  # what arrives meanwhile waits, latest wins


class Poller:
    def __init__(
        self,
        url: str,
        markets: list[str],
        redis_client,
        on_quotes=None,
        silence_s: float = 20.0,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        rest_url: str | None = None,
        on_books=None,
        marked: list[str] | tuple[str, ...] = (),
        on_mark=None,
        funding_intervals_ms: dict[str, int] | None = None,
    ):
        self.url = url
        self.rest_url = rest_url
        self.marked = frozenset(marked)
        self.marks = MarkStore(redis_client, funding_intervals_ms)
        self.on_mark = on_mark  # called with each mark stored (a newer one than Redis had)
        self.mark_frames = 0
        self.streams = [f"bookTicker.{market}" for market in markets]
        self.streams += [f"markPrice.{market}" for market in marked]
        self.books = {m: DepthBook(ASSET_BY_MARKET[m]) for m in markets if rest_url and m in ASSET_BY_MARKET}
        self.streams += [f"depth.{market}" for market in self.books]
        self.book_store = BookStore(redis_client)
        # on_books hears of the assets whose live book changed, once the change is in Redis
        self.book_writer = LatestWriter(
            "books", self._write_books, BOOKS_EVERY_S, on_books, self.book_store.delete, self._serialize_books
        )
        self.depth_frames = 0
        self.resyncs = 0
        self._books_lock = threading.Lock()
        self.prices = PriceStore(redis_client)
        # on_quotes hears of the quotes stored (newer than what Redis had), once they are in Redis
        self.quote_writer = LatestWriter("quotes", self._write_quotes, QUOTES_EVERY_S, on_quotes)
        self.status = FeedStatus(redis_client)
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
        for market in self.books:  # subscribed first, so the deltas after the snapshot are buffered
            self._resync(market, "new connection")
        if self.marked and self.rest_url:
            threading.Thread(target=self._fetch_marks, name="marks", daemon=True).start()

    def _on_message(self, ws, raw):
        self._last_frame = time.monotonic()
        try:
            data = decode(raw)
            depth = depth_delta(data)
            if depth is not None:
                self._on_depth(*depth)
                return
            mark = mark_from(data, self.marked)
            if mark is not None:
                self._on_mark(mark)
                return
            quote = quote_from(data)
        except BadFrame as exc:
            self.bad_frames += 1
            log.warning("skipping frame: %s", exc)
            return
        if quote is None:
            return
        self._got_data = True
        self.frames += 1
        self.quote_writer.put(quote.asset, quote)

    def _write_quotes(self, batch: dict[str, Quote]) -> list[Quote]:
        return self.prices.write_many(list(batch.values()))

    def _serialize_books(self, batch: dict[str, DepthBook]) -> dict[str, str]:
        """Each changed live book as it is now: serialized once a write rather than once a frame."""
        with self._books_lock:
            return {asset: book.serialized() for asset, book in batch.items() if book.live}

    def _write_books(self, books: dict[str, str]) -> list[str]:
        self.book_store.write_many(books)
        return list(books)

    def _on_mark(self, mark: Mark) -> None:
        self._got_data = True
        self.mark_frames += 1
        if self.marks.write(mark) and self.on_mark is not None:
            self.on_mark(mark)

    def _fetch_marks(self) -> None:
        """Every marked market's mark from REST at once, so none waits for its first frame. The
        CDN serves it up to a second old: it is stamped so, and the next frame replaces it."""
        try:
            with urllib.request.urlopen(f"{self.rest_url}/api/v1/markPrices", timeout=10) as response:
                entries = json.load(response)
            stamped = now_micros() - 1_000_000
            for entry in entries if isinstance(entries, list) else ():
                if isinstance(entry, dict) and entry.get("symbol") in self.marked:
                    data = {"e": "markPrice", "s": entry["symbol"], "p": entry.get("markPrice"), "E": stamped}
                    data |= {"i": entry.get("indexPrice"), "f": entry.get("fundingRate")}
                    data["n"] = entry.get("nextFundingTimestamp")
                    mark = mark_from(data, self.marked)
                    if mark is not None:
                        self.marks.write(mark)
        except (OSError, ValueError, BadFrame) as exc:
            log.warning("mark prices from REST failed: %s", exc)

    def _on_depth(self, asset, delta: dict) -> None:
        market = delta["s"]
        with self._books_lock:
            book = self.books.get(market)
            if book is None:
                return
            try:
                changed = book.on_delta(delta)
            except (BookGap, ValueError) as exc:
                self._resync(market, str(exc))
                return
            if changed:
                self.book_writer.put(asset.symbol, book)
        self._got_data = True
        self.depth_frames += 1

    def _resync(self, market: str, why: str) -> None:
        """Forget the market's book (in Redis too) and align it again from a fresh snapshot."""
        book = self.books[market]
        book.reset()
        self.book_writer.drop(book.asset.symbol)
        self.resyncs += 1
        log.info("resyncing the %s book: %s", market, why)
        threading.Thread(target=self._fetch_snapshot, args=(market,), name=f"snapshot-{market}", daemon=True).start()

    def _fetch_snapshot(self, market: str) -> None:
        url = f"{self.rest_url}/api/v1/depth?symbol={market}&limit={SNAPSHOT_LIMIT}"
        for attempt in range(10):
            if self.stop_event.is_set():
                return
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    snapshot = json.load(response)
                with self._books_lock:
                    book = self.books[market]
                    if book.live or book.on_snapshot(snapshot):
                        self.book_writer.put(book.asset.symbol, book)
                return  # live, or the socket's next deltas complete the alignment
            except BookGap as gap:
                log.info("%s; fetching the snapshot again", gap)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("depth snapshot for %s failed: %s", market, exc)
            self.stop_event.wait(backoff_delay(attempt, 0.2, 5, self._rng))

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
        alive_written = 0.0
        while thread.is_alive():
            if self.stop_event.wait(0.2):
                break
            silent_for = time.monotonic() - self._last_frame
            if silent_for > self.silence_s:
                log.warning("no frame for %.1fs: treating the socket as dead", silent_for)
                break
            if self.books and time.monotonic() - alive_written > ALIVE_EVERY_S:
                self._mark_books_alive()  # a quiet market's book stays usable while its socket lives
                alive_written = time.monotonic()
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
        threading.Thread(target=self.quote_writer.run, args=(self.stop_event,), name="quotes", daemon=True).start()
        if self.books:
            threading.Thread(target=self.book_writer.run, args=(self.stop_event,), name="books", daemon=True).start()
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
        self._record_stop()

    def _record_stop(self) -> None:
        """Books nobody maintains any more must not be traded against."""
        try:
            self.book_writer.drop(*(book.asset.symbol for book in self.books.values()))
            self.status.set_state("stopped")
        except Exception:
            log.exception("could not record the stop in Redis")

    def _mark_books_alive(self) -> None:
        with self._books_lock:
            live = [book.asset.symbol for book in self.books.values() if book.live]
        with contextlib.suppress(Exception):  # Redis down: the next round tries again
            self.status.mark_alive(live)

    def _record_disconnect(self) -> None:
        try:
            self.book_writer.drop(*(book.asset.symbol for book in self.books.values()))
            self.status.set_state("disconnected")
            self.status.count_reconnect()
        except Exception:
            log.exception("could not record the disconnect in Redis")

    def stop(self) -> None:
        self.stop_event.set()
