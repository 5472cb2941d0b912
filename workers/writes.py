"""An engine transaction's changes written and committed in one round trip to PostgreSQL.

The ORM's flush sends its statements one at a time and waits for each: an UPDATE per set of
changed columns of each table, an INSERT of the new ledger entries that reads their ids back
(which nothing here uses), then the COMMIT. That is four round trips or more for a batch, in
front of every order's answer. Here the same statements go out together with the COMMIT in a
psycopg pipeline, and the first error, if any, is raised at the commit.

The engine locks every row it changes (SELECT ... FOR UPDATE) before changing it, so the ORM's
check that each UPDATE matched its row has nothing to catch here.
"""

import functools
from collections import defaultdict

from sqlalchemy import Table, bindparam, insert, inspect, update
from sqlalchemy.orm import Session


@functools.lru_cache(maxsize=64)
def _update_statement(table: Table, keys: tuple[str, ...], columns: tuple[str, ...]):
    """UPDATE `table` SET `columns` WHERE its primary key `keys`, one row per parameter set."""
    where = [table.c[key] == bindparam(f"key_{key}") for key in keys]
    values = {name: bindparam(f"new_{name}", type_=table.c[name].type) for name in columns}
    return update(table).where(*where).values(values)


def _changes(session: Session) -> list[tuple]:
    """The session's changes as (statement, parameter sets): an UPDATE per table and set of
    changed columns, an INSERT per table and set of given columns (inline: it reads back no
    generated id, which would need the round trip this saves)."""
    if session.deleted:
        raise ValueError("deletes are not written here")
    updates: dict[tuple, list[dict]] = defaultdict(list)
    for obj in session.dirty:
        state = inspect(obj)
        mapper = state.mapper
        # committed_state: what each attribute set since the load held before (as the ORM's flush reads it)
        changed = {
            mapper.column_attrs[key].columns[0].name: state.dict[key]
            for key, before in state.committed_state.items()
            if state.dict[key] != before
        }
        if not changed:
            continue
        table = mapper.local_table
        keys = tuple(column.name for column in mapper.primary_key)
        params = {f"new_{name}": value for name, value in changed.items()}
        params.update(zip((f"key_{key}" for key in keys), state.identity, strict=True))
        updates[(table, keys, tuple(sorted(changed)))].append(params)
    inserts: dict[tuple, list[dict]] = defaultdict(list)
    for obj in session.new:
        state = inspect(obj)
        given = {
            prop.columns[0].name: state.dict[prop.key] for prop in state.mapper.column_attrs if prop.key in state.dict
        }
        inserts[(state.mapper.local_table, tuple(sorted(given)))].append(given)
    parents_first = sorted(inserts.items(), key=lambda item: _insert_order(item[0][0]))
    return [(_update_statement(*key), params) for key, params in updates.items()] + [
        (insert(table).inline(), rows) for (table, _), rows in parents_first
    ]


@functools.cache
def _insert_order(table: Table) -> int:
    """Where `table` comes among its metadata's tables, each after the ones its foreign keys name."""
    return table.metadata.sorted_tables.index(table)


def commit_in_one_round_trip(session: Session) -> None:
    """Write the session's changes (updates and inserts) and commit, all in one round trip.

    The session's objects are expunged: they keep their values, and the ORM writes them no more.
    """
    changes = _changes(session)
    connection = session.connection()
    session.expunge_all()
    with connection.connection.driver_connection.pipeline():
        for statement, params in changes:
            connection.execute(statement, params)
        session.commit()
