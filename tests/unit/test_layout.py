"""The layout's lists stay whole: every domain of the web app is under the routes-over-services
contract, and every model table and every account-event kind is where the code looks for it."""

import dataclasses
import tomllib
from pathlib import Path

from app.models import Fill, NetOrder, Order, Position
from core.events import OrderState
from core.net_events import FillState, NetOrderState, PositionState

ROOT = Path(__file__).resolve().parents[2]


def test_every_domain_with_routes_and_a_service_is_under_the_layer_contract():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (layered,) = [contract for contract in contracts if contract.get("layers") == ["routes", "service"]]
    domains = {
        f"app.{package.name}"
        for package in (ROOT / "app").iterdir()
        if (package / "routes.py").exists() and (package / "service.py").exists()
    }
    assert set(layered["containers"]) == domains


def test_an_orders_published_state_has_every_column_of_its_row():
    columns = [column.key for column in Order.__table__.columns]
    assert [field.name for field in dataclasses.fields(OrderState)] == columns


def test_a_netting_orders_published_state_has_every_column_of_its_row():
    columns = [column.key for column in NetOrder.__table__.columns]
    assert [field.name for field in dataclasses.fields(NetOrderState)] == columns
    fill_columns = {column.key for column in Fill.__table__.columns}
    assert {field.name for field in dataclasses.fields(FillState)} <= fill_columns
    position_columns = {column.key for column in Position.__table__.columns}
    assert {field.name for field in dataclasses.fields(PositionState)} <= position_columns
