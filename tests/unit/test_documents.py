"""The OpenAPI document, built offline: every route documents exactly the errors it can return,
and every state is the enum the database constraints are built from."""

import pytest

from app.errors import ErrorCode, ErrorSchema
from core.enums import CloseReason, LedgerKind, OrderStatus, RejectReason, Side


@pytest.fixture(scope="module")
def spec(offline_app):
    return offline_app.test_client().get("/openapi.json").json


def documented_errors(operation) -> set[str]:
    codes = set()
    for status, response in operation["responses"].items():
        description = response.get("description", "")
        if status >= "400" and description.startswith("error: "):
            codes |= set(description.removeprefix("error: ").split(" | "))
    return codes


@pytest.mark.parametrize(
    "path, method, expected",
    [
        (
            "/api/v1/trade/create",
            "post",
            {
                "validation",
                "unauthorized",
                "insufficient_balance",
                "slippage_exceeded",
                "idempotency_mismatch",
                "expired",
                "insufficient_liquidity",
                "price_unavailable",
                "rate_limited",
            },
        ),
        (
            "/api/v1/trade/close",
            "post",
            {
                "validation",
                "unauthorized",
                "not_found",
                "already_closed",
                "not_open",
                "insufficient_liquidity",
                "price_unavailable",
                "rate_limited",
            },
        ),
        ("/api/v1/trade/{order_id}", "get", {"unauthorized", "not_found"}),
        ("/api/v1/trade/cancel", "post", {"validation", "unauthorized", "not_found", "not_working", "rate_limited"}),
        ("/api/v1/signup", "post", {"validation", "rate_limited"}),
        ("/api/v1/signin/post", "get", {"validation", "unauthorized"}),
        ("/api/v1/balance/usd", "get", {"unauthorized"}),
    ],
)
def test_each_route_documents_exactly_its_errors(spec, path, method, expected):
    assert documented_errors(spec["paths"][path][method]) == expected


def test_error_bodies_are_one_schema_naming_every_code(spec):
    error = spec["components"]["schemas"]["Error"]
    assert set(error["properties"]["error"]["enum"]) == {code.value for code in ErrorCode}
    assert set(error["required"]) == {"code", "status", "message", "error"}
    assert ErrorSchema().dump({"code": 1, "status": "x", "message": "m", "error": "validation"})


def test_order_states_in_the_document_are_the_enums(spec):
    order = spec["components"]["schemas"]["Order"]["properties"]
    assert order["status"]["enum"] == [s.value for s in OrderStatus]
    assert order["type"]["enum"] == [s.value for s in Side]
    assert order["closeReason"]["enum"] == [s.value for s in CloseReason]
    assert order["rejectReason"]["enum"] == [s.value for s in RejectReason]


def test_model_constraints_are_built_from_the_enums():
    from app.models import LedgerEntry, Order

    def check(table, name) -> str:
        return next(str(c.sqltext) for c in table.__table__.constraints if c.name == name)

    assert check(Order, "status_known") == f"status IN ({', '.join(repr(s.value) for s in OrderStatus)})"
    assert check(LedgerEntry, "kind_known") == f"kind IN ({', '.join(repr(k.value) for k in LedgerKind)})"
