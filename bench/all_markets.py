"""The poller at Backpack's scale: every market `MARKETS=default` chooses (Backpack lists 91 open
perpetuals, plus the seed's three spot markets) on one socket, bookTicker, depth and markPrice
each, at once and at five times Backpack's frame rate: the `python -m poller` process's cores and
resident memory, how long after the last frame Redis held every market's last quote, book and
mark, and whether they agree.

Backpack's rate, as assumed here: its realtime depth streams of 91 perpetuals together were probed
at 2,800-3,200 frames/s (10,000/s at peaks; `backpack-protocol.md` §1); a bookTicker goes out when
a change touches the top of the book, taken as every other depth frame; a mark per perpetual every
second. So 1x is 3,000 depth, 1,500 bookTicker and 91 markPrice frames a second, spread over the
markets by a Zipf law (the busiest market carries about a fifth), as trading is.
"""

import os
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from bench.common import Progress, start, stop

DEPTH_PER_S = 3000  # Backpack's 91 perpetuals' realtime depth frames a second, together
TICKERS_PER_DEPTH = 0.5
PERPETUALS = 91
SECONDS = float(os.environ.get("BENCH_ALL_MARKETS_S", "15"))
SLICE_S = 0.1
CAUGHT_UP_WITHIN_S = 60


def listings():
    """The simulator's catalog grown to PERPETUALS open perpetuals with plain synthetic ones."""
    from poller.simulated_markets import LISTINGS, Listing

    open_perps = sum(1 for listing in LISTINGS if listing.perp and listing.state == "Open")
    extra = (
        Listing(f"SYN{n:02d}_USDC_PERP", f"{10 + n}.123", "0.001", "0.01", "0.01")
        for n in range(PERPETUALS - open_perps)
    )
    return (*LISTINGS, *extra)


@dataclass
class Tape:
    """One market's frames, continuing the book the poller synced: sizes change on its best three
    levels a side; a change of the best level also sends a bookTicker."""

    symbol: str
    u: int
    bids: list  # [price text, size text] best first
    asks: list
    sizes: list
    rng: random.Random
    last: dict = field(default_factory=dict)  # what the poller must end with: quote, depth u, mark

    @classmethod
    def of(cls, market, rng: random.Random) -> "Tape":
        def side(levels, best_first):
            top = sorted(levels.items(), reverse=best_first)[:3]
            return [[str(price), str(size)] for price, size in top]

        sizes = [str((Decimal(n) / 7).quantize(market.step)) for n in range(1, 40)]
        sizes = [size for size in sizes if Decimal(size) > 0]
        return cls(market.symbol, market.update_id, side(market.bids, True), side(market.asks, False), sizes, rng)

    def frames(self, at_us: int) -> list[str]:
        self.u += 1
        bid_side = self.rng.random() < 0.5
        level = 0 if self.rng.random() < TICKERS_PER_DEPTH else self.rng.randint(1, 2)
        levels = self.bids if bid_side else self.asks
        levels[level][1] = self.rng.choice(self.sizes)
        change = f'[["{levels[level][0]}","{levels[level][1]}"]]'
        a, b = ("[]", change) if bid_side else (change, "[]")
        s, u = self.symbol, self.u
        sent = [
            f'{{"data":{{"E":{at_us},"T":{at_us - 300},"U":{u},"a":{a},"b":{b},"e":"depth","s":"{s}","u":{u}}},'
            f'"stream":"depth.{s}"}}'
        ]
        self.last["depth_u"] = u
        if level == 0:
            (bid, bid_size), (ask, ask_size) = self.bids[0], self.asks[0]
            sent.append(
                f'{{"data":{{"A":"{ask_size}","B":"{bid_size}","E":{at_us},"T":{at_us - 300},"a":"{ask}",'
                f'"b":"{bid}","e":"bookTicker","s":"{s}","u":{u}}},"stream":"bookTicker.{s}"}}'
            )
            self.last["quote_u"] = u
        return sent

    def mark(self, at_us: int, price: str, next_ms: int) -> str:
        self.last["mark_us"] = at_us
        s = self.symbol
        return (
            f'{{"data":{{"E":{at_us},"T":{at_us - 500},"e":"markPrice","f":"0.0000125","i":"{price}",'
            f'"n":{next_ms},"p":"{price}","s":"{s}"}},"stream":"markPrice.{s}"}}'
        )


def schedule(tapes: list[Tape], marks: dict[str, tuple[str, int]], rate: float, began_us: int) -> list[list[str]]:
    """Frames in SLICE_S slices: `rate` times DEPTH_PER_S depth frames a second over the tapes by a
    Zipf law, and every perpetual's mark once a second."""
    weights = [1 / (rank + 1) for rank in range(len(tapes))]
    shares = [weight / sum(weights) for weight in weights]
    owed = [0.0] * len(tapes)
    per_slice = rate * DEPTH_PER_S * SLICE_S
    slices = []
    for index in range(int(SECONDS / SLICE_S)):
        at_us = began_us + int(index * SLICE_S * 1_000_000)
        frames = []
        for position, tape in enumerate(tapes):
            owed[position] += per_slice * shares[position]
            while owed[position] >= 1:
                owed[position] -= 1
                frames += tape.frames(at_us + len(frames))
        if index % round(1 / SLICE_S) == 0:
            frames += [tape.mark(at_us, *marks[tape.symbol]) for tape in tapes if tape.symbol in marks]
        slices.append(frames)
    return slices


def process_usage(pid: int) -> tuple[float, int]:
    """CPU seconds and resident kB of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), rss_kb


def lagging(client, tapes: list[Tape], asset_of: dict[str, str]) -> list[str]:
    """Markets (with what lags) whose quote, book or mark in Redis is not yet the last one sent,
    or whose book's best levels disagree with its quote."""
    import json

    from core.keys import BOOK_KEY, MARK_KEY, PRICE_KEY

    pipe = client.pipeline(transaction=False)
    for tape in tapes:
        asset = asset_of[tape.symbol]
        pipe.hget(PRICE_KEY.format(asset=asset), "u")
        pipe.hmget(PRICE_KEY.format(asset=asset), "bid", "ask")
        pipe.get(BOOK_KEY.format(asset=asset))
        pipe.hget(MARK_KEY.format(market=tape.symbol), "time")
    answers = pipe.execute()
    behind = []
    for index, tape in enumerate(tapes):
        quote_u, (bid, ask), book, mark_us = answers[4 * index : 4 * index + 4]
        book = json.loads(book) if book else None
        checks = {
            "quote": quote_u is not None and int(quote_u) == tape.last.get("quote_u", int(quote_u)),
            "book": book is not None and book["u"] == tape.last["depth_u"],
            "book top = quote": book is not None
            and [book["bids"][0][0], book["asks"][0][0]] == [int(bid or 0), int(ask or 0)],
            "mark": "mark_us" not in tape.last or (mark_us is not None and int(mark_us) == tape.last["mark_us"]),
        }
        if not all(checks.values()):
            behind.append(f"{tape.symbol} ({', '.join(name for name, ok in checks.items() if not ok)})")
    return behind


def bench_all_markets(app, env: dict) -> dict:
    """The poller process following every chosen market, fed at 1x and then 5x Backpack's rate."""
    from app.extensions import redis_client
    from app.markets.service import sync
    from core.assets import ASSET_BY_MARKET
    from poller.markets import followed_markets
    from poller.simulator import Simulator

    simulator = Simulator(interval_s=3600, listings=listings()).start()  # no frames but the bench's
    rest_url = f"http://127.0.0.1:{simulator.port}"
    for pattern in ("price:*", "book:*", "mark:*", "funding:*"):
        keys = list(redis_client.scan_iter(pattern))
        if keys:
            redis_client.delete(*keys)
    with app.app_context():
        sync(rest_url)
    followed = followed_markets(env["DATABASE_URL"], "default")
    poller_env = {**env, "BACKPACK_WS_URL": simulator.url, "BACKPACK_REST_URL": rest_url, "MARKETS": "default"}
    poller = start([sys.executable, "-m", "poller"], {**poller_env, "FEED_SILENCE_S": "60"}, "all-markets-poller")
    try:
        asset_of = {market: ASSET_BY_MARKET[market].symbol for market in followed.priced}
        books = [f"book:{asset}" for asset in asset_of.values()]
        deadline = time.monotonic() + 60
        while redis_client.exists(*books) < len(books) and time.monotonic() < deadline:
            time.sleep(0.1)  # connected, subscribed and every book synced from REST
        rng = random.Random(7)
        tapes = [Tape.of(simulator.markets[market], rng) for market in followed.priced]
        marks = {
            symbol: (simulator.mark(simulator.markets[symbol])["markPrice"], simulator.next_funding_ms())
            for symbol in followed.marked
        }
        rounds = [_feed(simulator, poller.pid, tapes, marks, rate, asset_of) for rate in (1, 5)]
    finally:
        stop(poller)
        simulator.stop()
    return {
        "markets": len(followed.priced),
        "perpetuals": len(followed.marked),
        "streams": len(followed.priced) * 2 + len(followed.marked),
        "rounds": rounds,
    }


def _feed(simulator, pid: int, tapes: list[Tape], marks: dict, rate: float, asset_of: dict) -> dict:
    from app.extensions import redis_client
    from core.prices import now_micros
    from poller.simulator import encode_text_frames

    began_us = now_micros() + 5_000_000
    texts = schedule(tapes, marks, rate, began_us)
    total = sum(len(frames) for frames in texts)
    slices = [encode_text_frames(frames) for frames in texts]
    progress = Progress(f"all markets at {rate}x", len(slices))
    while now_micros() < began_us:
        time.sleep(0.001)
    cpu_before, _ = process_usage(pid)
    began = time.perf_counter()
    peak_kb, sampled = 0, threading.Event()

    def sample_memory() -> None:
        nonlocal peak_kb
        while not sampled.wait(0.25):
            peak_kb = max(peak_kb, process_usage(pid)[1])

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    for index, frames in enumerate(slices):
        time.sleep(max(0.0, began + index * SLICE_S - time.perf_counter()))
        simulator.broadcast_encoded(frames)
        progress.tick()
    simulator.broadcast_raw().result(timeout=120)  # queued behind the last slice's write
    sent_s = time.perf_counter() - began
    behind = lagging(redis_client, tapes, asset_of)
    while behind and time.perf_counter() - began < sent_s + CAUGHT_UP_WITHIN_S:
        time.sleep(0.02)
        behind = lagging(redis_client, tapes, asset_of)
    wall = time.perf_counter() - began
    cpu_after, rss_kb = process_usage(pid)
    sampled.set()
    sampler.join()
    return {
        "rate": rate,
        "frames": total,
        "frames_per_s_sent": round(total / sent_s),
        "poller_cores": round((cpu_after - cpu_before) / wall, 2),
        "poller_rss_mb": round(max(peak_kb, rss_kb) / 1024, 1),
        "caught_up_after_s": round(wall - SECONDS, 2),
        "markets_behind": len(behind),
        "behind": behind[:5],
    }
