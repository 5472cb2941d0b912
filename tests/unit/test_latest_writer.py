"""The poller's writer threads (`poller.feed.LatestWriter`): latest value wins, and nothing
prepared before a drop is written after it (a resyncing book must not come back stale)."""

import threading

from poller.feed import LatestWriter
from tests.support.waiting import eventually


def run(writer: LatestWriter) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=writer.run, args=(stop,), daemon=True).start()
    return stop


def test_values_waiting_together_go_in_one_write_and_the_latest_wins():
    written, gate = [], threading.Event()
    writer = LatestWriter(
        "books",
        lambda batch: written.append(dict(batch)) or list(batch),
        0.0,
        prepare=lambda batch: gate.wait(5) and batch,
    )
    stop = run(writer)
    writer.put("BTC", 1)
    eventually(lambda: writer.busy)  # the first write is held in prepare: the next values wait
    writer.put("ETH", 1)
    writer.put("ETH", 2)
    writer.put("SOL", 1)
    gate.set()
    eventually(writer.idle)
    stop.set()
    assert written == [{"BTC": 1}, {"ETH": 2, "SOL": 1}]


def test_a_value_prepared_before_a_drop_is_not_written_after_it():
    written, deleted = [], []
    writer = LatestWriter(
        "books",
        lambda batch: written.append(dict(batch)) or list(batch),
        0.0,
        delete=lambda *assets: deleted.extend(assets),
    )

    def prepare(batch):
        if "BTC" in batch and not deleted:
            writer.drop("BTC")  # the book resyncs while its old state is on the way
        return batch

    writer.prepare = prepare
    stop = run(writer)
    writer.put("BTC", "stale")
    writer.put("ETH", "fresh")
    eventually(lambda: written and writer.idle())
    stop.set()
    assert deleted == ["BTC"] and written == [{"ETH": "fresh"}]
