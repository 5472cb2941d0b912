"""The wake-up protocol: how committed work reaches its shard's engine with one task per batch.

Each shard has a flag in Redis (`core.keys.ENGINE_WAKE_FLAG`) that counts claims. The API, after
it commits an order or close request, claims the flag (`claim_wake_up`); the first claim sends a
wake-up task, later ones ride the wake-up already on its way. The engine running a wake-up holds
the flags of its process's shards (`drain`), so work committed while it runs sends no task: the
running wake-up reads it. Letting go, it learns whether a claim came meanwhile and reads once
more if one did, so no committed work is ever left without a wake-up (proved by
`tests/integration/test_wakeup_protocol.py`, a Hypothesis state machine over every interleaving).

One shard's flag:

    absent ──claim (count 1: send a task)──▶ queued ──claim (count+1, no task)──▶ queued
      ▲                                        │
      │                                        │ its task starts: hold (SET 1)
      │                                        ▼
      │                       ┌────────────── held ◀──── take: claimed meanwhile ─┐
      │                       │                 │       (count back to 1, read)   │
      │    release: no claim  │                 └──claim (count+1, no task)──▶ held, claimed
      └───────────────────────┤
                              │ release: claimed meanwhile, or expired
                              └──▶ absent, and the engine reads again (and holds again if it
                                   found work: a claim may have sent a task meanwhile, whose flag
                                   then stays with that task)

A flag expires after WAKE_FLAG_TTL_S: a wake-up lost with its worker delays the shard's work that
long (or until the sweep re-sends it), never forever.
"""

import time
from collections.abc import Callable, Generator, Iterable
from typing import Any, Protocol

from core.keys import ENGINE_WAKE_FLAG

WAKE_FLAG_TTL_S = 2
LINGER_POLL_S = 0.002
# A wake-up lingers only within its first second: past it, it lets go at its next short read, so
# a steady trickle of orders cannot hold up the trigger checks and cancels queued on its shards.
LINGER_WITHIN_S = 1.0


class FlagStore(Protocol):
    def delete(self, *names: str) -> Any: ...

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any: ...


# INCR rather than SET NX: a refused claim leaves its mark on the flag, so the engine letting go
# of a flag it held knows whether work came in meanwhile (`release_wake_ups`).
_CLAIM_WAKE_UP = """
local claims = redis.call('INCR', KEYS[1])
if claims == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return claims
"""

# KEYS: the shards' flags, the running wake-up's own first when ARGV[2] is 1. Returns the
# 1-based positions of the flags it now holds.
_HOLD_WAKE_UPS = """
local held = {}
for i, key in ipairs(KEYS) do
    if i == 1 and ARGV[2] == '1' then
        redis.call('SET', key, 1, 'PX', ARGV[1])
        held[#held + 1] = i
    elseif redis.call('SET', key, 1, 'NX', 'PX', ARGV[1]) then
        held[#held + 1] = i
    end
end
return held
"""

# Deletes the flags; 1 if any was claimed while held (counted past 1) or had run out.
_RELEASE_WAKE_UPS = """
local claimed = 0
for _, key in ipairs(KEYS) do
    local claims = redis.call('GET', key)
    if not claims or tonumber(claims) > 1 then claimed = 1 end
end
redis.call('DEL', unpack(KEYS))
return claimed
"""

# Resets each held flag's count to 1 (held, with its expiry renewed); 1 if any was claimed since
# it was set (counted past 1) or had run out.
_TAKE_CLAIMS = """
local claimed = 0
for _, key in ipairs(KEYS) do
    local claims = redis.call('GET', key)
    if not claims or tonumber(claims) > 1 then
        claimed = 1
        redis.call('SET', key, 1, 'PX', ARGV[1])
    end
end
return claimed
"""


def _wake_flag(shard: int) -> str:
    return ENGINE_WAKE_FLAG.format(shard=shard)


def claim_wake_up(flags: FlagStore, shard: int) -> bool:
    """True when the caller must send the shard's engine a wake-up task for the work it just
    committed; False when one is already on its way or the engine is running (it holds the flag:
    `hold_wake_ups`), and so reads the caller's work before it is done."""
    return bool(flags.eval(_CLAIM_WAKE_UP, 1, _wake_flag(shard), WAKE_FLAG_TTL_S * 1000) == 1)


def clear_wake_up(flags: FlagStore, shard: int) -> None:
    """The sender, when the wake-up it claimed could not be sent: the shard's next order sends its
    own."""
    flags.delete(_wake_flag(shard))


def hold_wake_ups(flags: FlagStore, shards: Iterable[int], woken: int | None = None) -> list[int]:
    """The engine, as it starts (or resumes) executing the pending work of its process's `shards`:
    hold their wake-up flags, so work committed while it runs claims none and sends no task of its
    own. The flag of the shard whose wake-up is running (`woken`) is this wake-up's; a flag already
    set on another shard belongs to that shard's queued wake-up and stays with it, so there is
    never more than one queued per shard. Returns the shards this call holds."""
    order = [*([woken] if woken is not None else []), *sorted(set(shards) - {woken})]
    keys = [_wake_flag(shard) for shard in order]
    held = flags.eval(_HOLD_WAKE_UPS, len(keys), *keys, WAKE_FLAG_TTL_S * 1000, int(woken is not None))
    return [order[position - 1] for position in held]


def release_wake_ups(flags: FlagStore, shards: list[int]) -> bool:
    """The engine, once a read came back short: let go of the flags it held. True when a claim was
    refused meanwhile (or a flag ran out), so work may have been committed that its reads did not
    see: the engine reads once more. Work committed after this claims a new wake-up."""
    return _any_claimed(flags, _RELEASE_WAKE_UPS, shards)


def take_claims(flags: FlagStore, shards: list[int]) -> bool:
    """The engine, still holding `shards`' flags: True when a claim was refused since it took
    them (or since the last call), so work was committed that it has not read. The flags stay
    held and their counts start over."""
    return _any_claimed(flags, _TAKE_CLAIMS, shards, WAKE_FLAG_TTL_S * 1000)


def _any_claimed(flags: FlagStore, script: str, shards: list[int], *args: Any) -> bool:
    """Run a script over the held flags of `shards` that answers 1 when any was claimed meanwhile."""
    if not shards:
        return False
    keys = [_wake_flag(shard) for shard in shards]
    return bool(flags.eval(script, len(keys), *keys, *args) == 1)


def drain(
    flags: FlagStore,
    shards: Iterable[int],
    woken: int,
    read: Callable[[], int],
    batch: int,
    linger_s: float,
    linger_within_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> Generator[float, None, None]:
    """A wake-up of shard `woken`: hold the flags of the process's `shards`, `read()` batches
    (it returns how much work it took, at most `batch`) until one comes back short, then let go.

    After a short read, and only within `linger_within_s` of the start (so a steady trickle cannot
    hold up the trigger checks and cancels queued behind it), it keeps the flags `linger_s` longer,
    looking every LINGER_POLL_S for a claim refused meanwhile: at a steady trickle the next order
    then costs a Redis call, where a wake-up of its own costs a Celery task in the web and in the
    engine.

    A generator that yields before each step the pause to take first: `run` drives it; the
    protocol's state machine test interleaves claims between its steps."""
    shards = sorted(set(shards))
    yield 0.0
    held = hold_wake_ups(flags, shards, woken=woken)
    linger_until = clock() + linger_within_s
    while True:
        yield 0.0
        taken = read()
        if taken == batch:
            continue  # a whole batch: there may be more
        if held and clock() < linger_until and (yield from _claimed_while_lingering(flags, held, linger_s, clock)):
            continue
        if held:
            yield 0.0
            claimed_meanwhile = release_wake_ups(flags, held)
            held = []
            if claimed_meanwhile:
                continue  # read once more: work committed before the release
            return
        if not taken:
            return
        yield 0.0
        held = hold_wake_ups(flags, shards)  # work committed around the release: hold again


def _claimed_while_lingering(
    flags: FlagStore, held: list[int], linger_s: float, clock: Callable[[], float]
) -> Generator[float, None, bool]:
    deadline = clock() + linger_s
    while clock() < deadline:
        yield LINGER_POLL_S
        if take_claims(flags, held):
            return True
    return False


def run(steps: Generator[float, None, None]) -> None:
    """Drive `drain` to its end, taking its pauses."""
    for pause in steps:
        if pause:
            time.sleep(pause)
