"""Ids the engine takes from PostgreSQL's sequences ahead of its inserts."""

from collections import deque

from sqlalchemy import text

from app.extensions import db


class SequenceBlock:
    """Values of a column's sequence taken a block at a time, so the engine knows a fill's id or
    an order's number before the insert (which reads nothing back, `workers.writes`) and its
    event can carry them. A block a crash loses leaves a gap, as any sequence may."""

    def __init__(self, table: str, column: str, size: int):
        self.table, self.column, self.size = table, column, size
        self.free: deque[int] = deque()

    def take(self) -> int:
        if not self.free:
            taken = db.session.scalars(
                text("SELECT nextval(pg_get_serial_sequence(:table, :column)) FROM generate_series(1, :size)"),
                {"table": self.table, "column": self.column, "size": self.size},
            )
            self.free.extend(sorted(taken))
        return self.free.popleft()


FILL_IDS = SequenceBlock("fills", "id", 100)
ORDER_NUMBERS = SequenceBlock("net_orders", "number", 10)  # the orders the engine opens itself
