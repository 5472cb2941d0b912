"""The poller's minute candles: quotes are aggregated in memory and upserted in PostgreSQL about
once a second (one round trip for every asset's changed minutes), never once per frame.

Each flush writes what arrived since the previous one; the upsert merges it into the stored
minute (open kept, high/low widened, close replaced, ticks added), so a restarted poller or a
failed flush (merged back and retried) loses nothing.
"""

import logging
import threading
from datetime import UTC, datetime

import psycopg

from core.candles import Bar, mid, minute_of
from core.prices import Quote

log = logging.getLogger(__name__)

UPSERT = """
INSERT INTO candles (asset, bucket, open, high, low, close, ticks) VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (asset, bucket) DO UPDATE SET
  high = GREATEST(candles.high, EXCLUDED.high),
  low = LEAST(candles.low, EXCLUDED.low),
  close = EXCLUDED.close,
  ticks = candles.ticks + EXCLUDED.ticks
"""


class CandleRecorder:
    def __init__(self, database_url: str, flush_every_s: float = 1.0):
        self.database_url = database_url
        self.flush_every_s = flush_every_s
        self.pending: dict[tuple[str, int], Bar] = {}
        self.lock = threading.Lock()
        self.flushes = 0
        self._connection: psycopg.Connection | None = None

    def add(self, quote: Quote) -> None:
        price, key = mid(quote.bid, quote.ask), (quote.asset, minute_of(quote.time_us))
        with self.lock:
            bar = self.pending.get(key)
            if bar is None:
                self.pending[key] = Bar.at(price)
            else:
                bar.add(price)

    def flush(self) -> int:
        """Write what arrived since the last flush; returns the number of minutes written."""
        with self.lock:
            batch, self.pending = self.pending, {}
        if not batch:
            return 0
        rows = [
            (asset, datetime.fromtimestamp(minute, UTC), bar.open, bar.high, bar.low, bar.close, bar.ticks)
            for (asset, minute), bar in batch.items()
        ]
        try:
            connection = self._connect()
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(UPSERT, rows)
        except psycopg.Error as exc:
            log.warning("candles not written (%s); retrying with the next flush", exc)
            self._drop_connection()
            with self.lock:  # what arrived meanwhile comes after the failed batch
                for key, later in self.pending.items():
                    batch[key] = batch[key].then(later) if key in batch else later
                self.pending = batch
            return 0
        self.flushes += 1
        return len(rows)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.flush_every_s):
            self.flush()
        self.flush()
        self._drop_connection()

    def _connect(self) -> psycopg.Connection:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self.database_url, connect_timeout=5)
        return self._connection

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
