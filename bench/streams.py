"""500 Server-Sent-Events clients connected while trades run: what they cost the trades, against
the same trades without them just before and just after (their mean, so a drift of the machine
over the suite lands on neither side)."""

import asyncio
import threading
import time

from bench.common import ROUND_TRIPS, STREAM_CLIENTS, Progress
from bench.trades import bench_trades


class StreamCrowd:
    """Hundreds of SSE clients on one asyncio loop (in a thread): raw HTTP/1.1 connections that
    read events until closed, counting the clients that got their first event and all events."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.connected = 0
        self.events = 0
        self.failed: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.tasks: list[asyncio.Task] = []
        self.writers: list[asyncio.StreamWriter] = []
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    async def _client(self, path: str, headers: dict, progress: Progress) -> None:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self.writers.append(writer)
            lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}", "Accept: text/event-stream"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            status = await reader.readline()
            if b" 200 " not in status:
                self.failed.append(status.decode(errors="replace").strip())
                progress.tick()
                return
            first = True
            while line := await reader.readline():
                if line.startswith(b"event:"):
                    self.events += 1
                    if first:
                        first = False
                        self.connected += 1
                        progress.tick()
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.failed.append(repr(exc))

    def connect(self, streams: list[tuple[str, dict]]) -> None:
        progress = Progress("SSE clients connecting", len(streams))

        async def start_all():
            for path, headers in streams:
                self.tasks.append(asyncio.ensure_future(self._client(path, headers, progress)))
                await asyncio.sleep(0.005)

        asyncio.run_coroutine_threadsafe(start_all(), self.loop).result()
        deadline = time.monotonic() + 60
        while self.connected + len(self.failed) < len(streams) and time.monotonic() < deadline:
            time.sleep(0.1)

    def close(self) -> None:
        """Cancel the clients and close their connections, so the web stops streaming to them."""

        async def close_all():
            for task in self.tasks:
                task.cancel()
            for writer in self.writers:
                writer.close()

        asyncio.run_coroutine_threadsafe(close_all(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)


def bench_streams(port: int, base_url: str, traders: list[dict], watchers: list[dict]) -> tuple[dict, dict, dict]:
    """The trades without streams, then with STREAM_CLIENTS streams connected, then without again.
    Returns the crowd's figures, the trades with them, and the trades without (before; after)."""
    before = bench_trades(base_url, traders, label="trades before streams", round_trips=2 * ROUND_TRIPS)
    crowd = StreamCrowd("127.0.0.1", port)
    half = STREAM_CLIENTS // 2
    streams = [("/api/v1/stream/prices", {})] * (STREAM_CLIENTS - half)
    streams += [("/api/v1/stream/orders", watchers[i % len(watchers)]) for i in range(half)]
    crowd.connect(streams)
    events_before = crowd.events
    began = time.perf_counter()
    trades = bench_trades(base_url, traders, label="trades with streams", round_trips=2 * ROUND_TRIPS)
    events_per_s = (crowd.events - events_before) / (time.perf_counter() - began)
    result = {
        "clients": STREAM_CLIENTS,
        "connected": crowd.connected,
        "failed": len(crowd.failed),
        "failure_examples": crowd.failed[:3],
        "events_per_s": round(events_per_s, 1),
    }
    crowd.close()
    time.sleep(2)  # the web's stream greenlets notice their closed sockets
    after = bench_trades(base_url, traders, label="trades after streams", round_trips=2 * ROUND_TRIPS)
    for measured in (before, trades, after):
        del measured["latencies"]
    return result, trades, {"before": before, "after": after}
