"""The wake-up protocol (`core.wakeups`) on real Redis, as a Hypothesis state machine: orders are
committed and claimed on several shards of one engine process while its wake-ups run step by
step, interleaved every way. Every order is executed by the time the wake-ups its claim could count on
have ended (the one its claim sent, or those queued or running when its claim was refused), never
only rescued by a later order's wake-up; and no flag is left behind to swallow the next claim."""

import itertools

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from core import wakeups
from core.keys import ENGINE_WAKE_FLAG

SHARDS = (1001, 1002, 1003)  # one engine process's shards, far from the test engines' own
BATCH = 2
LINGER_S = 0.002  # one look for a claim: a linger short enough for the search to get past it
LINGER_WITHIN_S = 1.0


class WakeUpProtocol(RuleBasedStateMachine):
    def __init__(self, flags: redis.Redis):
        super().__init__()
        self.flags = flags
        flags.delete(*(ENGINE_WAKE_FLAG.format(shard=shard) for shard in SHARDS))
        self.ids = itertools.count()
        self.pending: list[int] = []  # committed, not executed yet (the engine reads them oldest first)
        self.committed: set[int] = set()
        self.executed: set[int] = set()
        self.unclaimed: list[tuple[int, int]] = []  # (order, shard) committed, not claimed yet
        self.wake_up_ids = itertools.count()
        self.queue: list[tuple[int, int]] = []  # wake-up tasks sent: (wake-up, shard)
        self.running = None  # the engine's wake-up in progress: a `drain` generator
        self.running_id: int | None = None
        self.counted_on: dict[int, set[int | None]] = {}  # order -> the wake-ups its claim could count on
        self.ended: set[int | None] = {None}
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def read(self) -> int:
        taken = self.pending[:BATCH]
        del self.pending[:BATCH]
        self.executed.update(taken)
        return len(taken)

    @rule(shard=st.sampled_from(SHARDS))
    def commit(self, shard):
        order = next(self.ids)
        self.pending.append(order)
        self.committed.add(order)
        self.unclaimed.append((order, shard))

    @rule(shard=st.sampled_from(SHARDS))
    def accept(self, shard):
        """An order accepted as the API accepts one: committed, then claimed at once."""
        self.commit(shard)
        self.claim_first(len(self.unclaimed) - 1)

    @precondition(lambda self: self.unclaimed)
    @rule(data=st.data())
    def claim(self, data):
        """The API, after its commit: send a wake-up if its claim is the first."""
        self.claim_first(data.draw(st.integers(0, len(self.unclaimed) - 1)))

    @precondition(lambda self: self.running is None and self.queue)
    @rule()
    def start_wake_up(self):
        self.running_id, shard = self.queue.pop(0)
        self.running = wakeups.drain(
            self.flags, SHARDS, shard, self.read, BATCH, LINGER_S, LINGER_WITHIN_S, clock=self.clock
        )

    @precondition(lambda self: self.running is not None)
    @rule(steps=st.integers(1, 4))
    def step(self, steps=1):
        """The running wake-up takes its next `steps` steps (each one Redis call or one read)."""
        for _ in range(steps):
            try:
                self.now += next(self.running)
            except StopIteration:
                self.ended.add(self.running_id)
                self.running = self.running_id = None
                self.check_counted_on()
                return

    @rule()
    def time_passes(self):
        self.now += 0.4

    @rule()
    def settle(self):
        """Nothing more arrives: every claim is made and every wake-up runs to its end. A later
        order's wake-up would read an order left behind too, so this is checked at every point of
        a run, not only at its end."""
        while self.unclaimed:
            self.claim_first(0)
        while self.running is not None or self.queue:
            if self.running is None:
                self.start_wake_up()
            self.step()
        assert self.executed == self.committed, f"left without a wake-up: {sorted(self.committed - self.executed)}"
        for shard in SHARDS:
            assert wakeups.claim_wake_up(self.flags, shard), "a flag outlived its wake-up"
            wakeups.clear_wake_up(self.flags, shard)  # that claim sent no task: take it back

    def teardown(self):
        self.settle()

    def check_counted_on(self):
        for order, wake_ups in self.counted_on.items():
            if wake_ups <= self.ended:
                assert order in self.executed, f"order {order}: its wake-ups ended without reading it"

    def claim_first(self, index: int):
        order, shard = self.unclaimed.pop(index)
        if wakeups.claim_wake_up(self.flags, shard):
            self.queue.append((next(self.wake_up_ids), shard))
            wake_ups = {self.queue[-1][0]}
        else:  # refused: a wake-up on its way or running must read it
            wake_ups = {wake_up for wake_up, _ in self.queue} | {self.running_id}
        if order not in self.executed:  # else read already, between its commit and its claim
            self.counted_on[order] = wake_ups


@pytest.mark.timeout(600)
def test_no_committed_order_is_ever_left_without_a_wake_up(app):
    flags = redis.Redis.from_url(app.config["REDIS_URL"])
    try:
        run_state_machine_as_test(
            lambda: WakeUpProtocol(flags),
            settings=settings(
                max_examples=300,
                stateful_step_count=40,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        flags.delete(*(ENGINE_WAKE_FLAG.format(shard=shard) for shard in SHARDS))
        flags.close()
