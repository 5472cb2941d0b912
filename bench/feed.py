"""The poller's frame rates into Redis (quotes and depth books) against plain redis-py writes."""

import threading
import time

import redis

from bench.common import POLLER_FRAMES, Progress


def bench_poller(redis_url: str) -> dict:
    """Frames/s a poller sustains from a socket into Redis (each market's latest quote written, every
    waiting market in one round trip) vs. plain redis-py HSETs, one a frame, on the same server."""
    from poller.feed import Poller
    from poller.simulator import Simulator, frame

    simulator = Simulator(interval_s=3600).start()
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    followed = ["SOL_USDC", "BTC_USDC", "ETH_USDC"]
    poller = Poller(simulator.url, followed, conn, silence_s=60)
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    while poller.connections == 0 or not simulator.connections:
        time.sleep(0.01)
    markets = [simulator.markets[symbol] for symbol in followed]  # the simulator lists more
    frames = []
    for i in range(POLLER_FRAMES):
        market = markets[i % len(markets)]
        frames.append(frame(f"bookTicker.{market.symbol}", simulator.book_ticker(market)))
    progress = Progress("poller frames", POLLER_FRAMES)
    began = time.perf_counter()
    simulator.broadcast_raw(*frames)
    seen = 0
    while poller.frames < POLLER_FRAMES or not poller.quote_writer.idle():  # received, and the latest in Redis
        time.sleep(0.05)
        progress.tick(poller.frames - seen)
        seen = poller.frames
    poller_elapsed = time.perf_counter() - began
    progress.tick(POLLER_FRAMES - seen)
    poller.stop()
    thread.join(5)
    simulator.stop()

    began = time.perf_counter()
    for i in range(POLLER_FRAMES):
        conn.hset(f"bench:price:{i % 3}", mapping={"bid": i, "ask": i + 1, "time": i, "u": i})
    raw_elapsed = time.perf_counter() - began
    conn.delete("bench:price:0", "bench:price:1", "bench:price:2")
    poller_rate = POLLER_FRAMES / poller_elapsed
    raw_rate = POLLER_FRAMES / raw_elapsed
    return {
        "frames": POLLER_FRAMES,
        "poller_frames_per_s": round(poller_rate, 1),
        "redis_py_hset_per_s": round(raw_rate, 1),
        "ratio": round(poller_rate / raw_rate, 3),
    }


def bench_depth(redis_url: str) -> dict:
    """Depth frames/s a poller applies to its books and writes to Redis (one round trip a frame)
    vs. plain redis-py SETs of the same book JSON on the same server."""
    from poller.feed import Poller
    from poller.simulator import Simulator, frame

    simulator = Simulator(interval_s=3600).start()  # no ticks of its own: only the frames below
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    markets = ["SOL_USDC", "BTC_USDC", "ETH_USDC"]
    poller = Poller(simulator.url, markets, conn, silence_s=60, rest_url=f"http://127.0.0.1:{simulator.port}")
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    while poller.resyncs < len(markets) or not simulator.connections:
        time.sleep(0.01)
    time.sleep(1)  # the snapshots are fetched; every delta below follows on from them
    frames = []
    for i in range(POLLER_FRAMES):
        market = simulator.markets[markets[i % len(markets)]]
        frames.append(frame(f"depth.{market.symbol}", simulator.book_frames(market)[0]))
    progress = Progress("poller depth frames", POLLER_FRAMES)
    began = time.perf_counter()
    simulator.broadcast_raw(*frames)
    seen = 0
    while poller.depth_frames < POLLER_FRAMES or not poller.book_writer.idle():  # applied, and in Redis
        time.sleep(0.01)
        progress.tick(poller.depth_frames - seen)
        seen = poller.depth_frames
    elapsed = time.perf_counter() - began
    progress.tick(POLLER_FRAMES - seen)
    live = all(book.live for book in poller.books.values())
    writes = poller.book_writer.writes
    payload = next(iter(poller.books.values())).serialized()
    poller.stop()
    thread.join(5)
    simulator.stop()
    began = time.perf_counter()
    for i in range(POLLER_FRAMES):
        conn.set(f"bench:book:{i % 3}", payload)
    raw_elapsed = time.perf_counter() - began
    conn.delete("bench:book:0", "bench:book:1", "bench:book:2")
    rate, raw_rate = POLLER_FRAMES / elapsed, POLLER_FRAMES / raw_elapsed
    return {
        "frames": POLLER_FRAMES,
        "books_live": live,
        "redis_writes": writes,  # one round trip each, every waiting market's latest book at once
        "depth_frames_per_s": round(rate, 1),
        "redis_py_set_per_s": round(raw_rate, 1),
        "ratio": round(rate / raw_rate, 3),
    }
