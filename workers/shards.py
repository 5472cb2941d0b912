"""Shards in SQL: the engine's queries keep to its own shards with the same hash as `core.shards`."""

from flask import current_app
from sqlalchemy import BigInteger, Integer, cast, literal

from core.shards import HASH_BITS, HASH_MULTIPLIER


def account_shard(account_id_column):
    """`core.shards.shard_of` in SQL, so a query can keep to this process's shards."""
    hashed = cast(account_id_column, BigInteger) * HASH_MULTIPLIER % (1 << HASH_BITS)
    return (hashed * current_app.config["ENGINE_SHARDS"]).op(">>")(literal(HASH_BITS, Integer))
