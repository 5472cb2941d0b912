"""Queues, task names and routes: how the web app and the poller enqueue work by name.

Neither imports the code that runs a task; they send its name through a Celery client, so the
engine's code is loaded only by the engine. Engine tasks go to their account's shard queue
(`core.shards`): the sender names the account (`account_id=`) or the shard (`shard=`).
"""

from collections.abc import Iterable
from typing import Any, Protocol

from core.keys import ENGINE_WAKE_FLAG, TRIGGER_CHECK_FLAG
from core.shards import shard_of, shard_queue

EMAIL_QUEUE = "email"
DEFAULT_QUEUE = "default"  # anything unrouted: consumed by the mailer, never queued behind trades
ENGINE_WORKER_PREFIX = "engine"  # engine worker names: engine<index>@<host>

EXECUTE_ORDER = "engine.execute_order"
CLOSE_ORDER = "engine.close_order"
CANCEL_ORDER = "engine.cancel_order"
CHECK_TRIGGERS = "engine.check_triggers"
SWEEP_STUCK_ORDERS = "engine.sweep_stuck_orders"
RESET_ACCOUNT = "engine.reset_account"
SNAPSHOT_EQUITY = "analytics.snapshot_equity"  # set-based, read-mostly: not the engine's queue
SEND_SIGN_IN_LINK = "mail.send_sign_in_link"
SWEEP_MAIL_OUTBOX = "mail.sweep_outbox"

ENGINE_TASK_PREFIX = "engine."
MAIL_ROUTES = {"mail.*": {"queue": EMAIL_QUEUE}}
TRIGGER_CHECK_FLAG_TTL_S = 10
WAKE_FLAG_TTL_S = 2  # a lost wake-up delays its shard's orders this long, or until the sweep


class EngineRouter:
    """Celery router: an engine task goes to the queue of its account's shard, or of the shard it
    names (trigger checks and sweeps work shard by shard). An engine task naming neither is a bug:
    refused at the sender, never left to whichever worker reads the default queue."""

    def __init__(self, shards: int):
        self.shards = shards

    def __call__(self, name: str, args: Any, kwargs: Any, options: Any, *_: Any, **__: Any) -> dict[str, str] | None:
        if not name.startswith(ENGINE_TASK_PREFIX):
            return None
        kwargs = kwargs or {}
        if kwargs.get("account_id") is not None:
            return {"queue": shard_queue(shard_of(int(kwargs["account_id"]), self.shards))}
        if kwargs.get("shard") is not None:
            return {"queue": shard_queue(int(kwargs["shard"]))}
        raise ValueError(f"{name} needs account_id= or shard= to reach its engine")


class TaskSender(Protocol):
    def send_task(self, name: str, args: Any = ..., **options: Any) -> Any: ...


class FlagStore(Protocol):
    def pipeline(self, transaction: bool = ...) -> Any: ...

    def delete(self, *names: str) -> Any: ...

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any: ...


def request_trigger_check(flags: FlagStore, sender: TaskSender, asset: str, shards: int) -> int:
    """Enqueue a trigger check of `asset` for each shard that has none pending (coalesces price
    moves); returns how many were enqueued."""
    with flags.pipeline(transaction=False) as pipe:
        for shard in range(shards):
            pipe.set(TRIGGER_CHECK_FLAG.format(asset=asset, shard=shard), 1, nx=True, ex=TRIGGER_CHECK_FLAG_TTL_S)
        pending = pipe.execute()
    enqueued = [shard for shard, flagged in enumerate(pending) if flagged]
    for shard in enqueued:
        sender.send_task(CHECK_TRIGGERS, args=[asset], kwargs={"shard": shard})
    return len(enqueued)


def clear_trigger_check(flags: FlagStore, asset: str, shard: int) -> None:
    """A trigger check starting: the next price move may schedule another."""
    flags.delete(TRIGGER_CHECK_FLAG.format(asset=asset, shard=shard))


# INCR rather than SET NX: a refused claim leaves its mark on the flag, so the engine letting go
# of a flag it held knows whether work came in meanwhile (`release_wake_ups`).
_CLAIM_WAKE_UP = """
local claims = redis.call('INCR', KEYS[1])
if claims == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return claims
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
