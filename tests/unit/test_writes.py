"""`workers/writes.py` writes an engine transaction's column changes and new rows as statements of
their own table, bypassing the ORM's flush: a model that gains what only the flush does fails
here first (its integration test, tests/integration/test_writes.py, watches the wire)."""

import pytest

import app.models  # noqa: F401  the models, registered
from app.extensions import db

MAPPERS = sorted(db.Model.registry.mappers, key=lambda mapper: mapper.class_.__name__)


@pytest.mark.parametrize("mapper", MAPPERS, ids=[mapper.class_.__name__ for mapper in MAPPERS])
def test_every_model_is_one_the_one_round_trip_commit_can_write(mapper):
    assert mapper.inherits is None, "a parent's table would not be written"
    assert mapper.version_id_col is None, "a version counter would not be checked or bumped"
    assert not mapper.relationships, "a foreign key set through a relationship would not be written"
    for name in ("before_insert", "after_insert", "before_update", "after_update"):
        assert not getattr(mapper.dispatch, name), f"{name} listeners would not run"
    for column in mapper.local_table.columns:
        assert column.server_onupdate is None, "a value the server sets on update would not be read back"
