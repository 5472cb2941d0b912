"""Engine shards: which engine process is the one writer of an account.

An account belongs to one of ENGINE_SHARDS fixed virtual shards, by a stable hash of its id.
Every engine task of the account goes to its shard's queue, `engine.<n>`, and each engine
process (concurrency 1) consumes a disjoint set of shard queues: more processes move whole
queues between processes, never an account between shards.
"""

import re
from collections.abc import Iterable

ENGINE_QUEUE_PREFIX = "engine."
HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash: an odd number near 2**32 / golden ratio
HASH_BITS = 32


def shard_of(account_id: int, shards: int) -> int:
    """The shard of an account: the top bits of a multiplicative hash of its id, scaled onto
    0..shards-1 (its low bits would only repeat the id's own low bits). The engine's SQL computes
    the same expression (`workers.shards.account_shard`)."""
    hashed = account_id * HASH_MULTIPLIER % (1 << HASH_BITS)
    return (hashed * shards) >> HASH_BITS


def shard_queue(shard: int) -> str:
    return f"{ENGINE_QUEUE_PREFIX}{shard}"


def shard_queues(shard_set: Iterable[int]) -> list[str]:
    return [shard_queue(shard) for shard in sorted(shard_set)]


def process_shards(index: int, processes: int, shards: int) -> frozenset[int]:
    """Engine process `index` of `processes` (0-based) owns every processes-th shard from `index`."""
    if not 0 <= index < processes <= shards:
        raise ValueError(f"engine process {index} of {processes} cannot share {shards} shards")
    return frozenset(range(index, shards, processes))


def parse_shard_set(text: str, shards: int) -> frozenset[int]:
    """`0-7`, `0,2,4` or `0-3,8`: the shards one engine process consumes."""
    owned: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if match is None:
            raise ValueError(f"{part.strip()!r} is not a shard or a range of shards like 0-7")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if not first <= last < shards:
            raise ValueError(f"{part.strip()!r} is not a range of shards within 0-{shards - 1}")
        owned.update(range(first, last + 1))
    return frozenset(owned)


def format_shard_set(shard_set: Iterable[int]) -> str:
    """The inverse of `parse_shard_set`, with runs as ranges: {0, 1, 2, 5} -> `0-2,5`."""
    runs: list[list[int]] = []
    for shard in sorted(shard_set):
        if runs and shard == runs[-1][1] + 1:
            runs[-1][1] = shard
        else:
            runs.append([shard, shard])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in runs)
