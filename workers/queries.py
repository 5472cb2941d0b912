"""How the engine's batch statements pick their rows, so the plan cannot go wrong with the stats."""

from sqlalchemy import Select, any_, cast, func, select
from sqlalchemy.dialects.postgresql import ARRAY, UUID


def among(id_column, ids: Select):
    """`id_column = ANY(array of the ids `ids` selects)`: the array is built first, then each row
    is found by its primary key. As `id_column IN (ids)`, the planner was free to hash-join the
    ids against a sequential scan of the whole table, and did whenever its statistics guessed
    the subquery large (stale after a burst of orders): every batch then read every order, a
    cost growing with the table until the next autoanalyze (an open loop's tail rose from 25 to
    60 ms over a minute, PostgreSQL's CPU from 0.2 to 0.45 cores)."""
    listed = select(func.array_agg(ids.subquery().c[0])).scalar_subquery()
    return id_column == any_(cast(listed, ARRAY(UUID(as_uuid=True))))
