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
                "not_found",  # an account that is not yours
                "account_archived",
                "insufficient_balance",
                "invalid_price",
                "invalid_quantity",
                "market_not_open",
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
        ("/api/v1/trade/{order_id}", "get", {"validation", "unauthorized", "not_found"}),
        ("/api/v1/trade/cancel", "post", {"validation", "unauthorized", "not_found", "not_working", "rate_limited"}),
        ("/api/v1/signup", "post", {"validation", "rate_limited"}),
        ("/api/v1/signin/post", "get", {"validation", "unauthorized"}),
        ("/api/v1/balance/usd", "get", {"validation", "unauthorized", "not_found"}),
        ("/api/v1/accounts", "post", {"validation", "unauthorized", "too_many_accounts", "name_taken"}),
        ("/api/v1/accounts/{account_id}", "delete", {"unauthorized", "not_found", "main_account"}),
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
    assert order["closeReason"]["enum"] == [*(s.value for s in CloseReason), None]  # null: not closed
    assert order["rejectReason"]["enum"] == [*(s.value for s in RejectReason), None]


def test_model_constraints_are_built_from_the_enums():
    from app.models import LedgerEntry, Order

    def check(table, name) -> str:
        return next(str(c.sqltext) for c in table.__table__.constraints if c.name == name)

    assert check(Order, "status_known") == f"status IN ({', '.join(repr(s.value) for s in OrderStatus)})"
    assert check(LedgerEntry, "kind_known") == f"kind IN ({', '.join(repr(k.value) for k in LedgerKind)})"


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


def test_the_document_is_valid_openapi_with_an_operation_id_each(spec):
    from openapi_spec_validator import validate

    validate(spec)
    ids = [operation["operationId"] for _, _, operation in operations(spec)]
    assert len(ids) == len(set(ids)) and all(ids)


def test_every_integer_is_int64(spec):
    def integers(node):
        if isinstance(node, dict):
            if node.get("type") == "integer":
                yield node
            for value in node.values():
                yield from integers(value)
        elif isinstance(node, list):
            for value in node:
                yield from integers(value)

    found = list(integers(spec))
    assert len(found) > 50 and all(node.get("format") == "int64" for node in found)


def test_authentication_idempotency_and_headers_are_declared(spec):
    assert set(spec["components"]["securitySchemes"]) == {"bearerAuth", "cookieAuth"}
    secured = {(path, method) for path, method, operation in operations(spec) if "security" in operation}
    assert ("/api/v1/trade/create", "post") in secured and ("/api/v1/tokens", "post") in secured
    assert ("/api/v1/signup", "post") not in secured and ("/api/v1/prices", "get") not in secured
    create = spec["paths"]["/api/v1/trade/create"]["post"]
    assert "Idempotency-Key" in [parameter["name"] for parameter in create["parameters"]]
    for path, method, operation in operations(spec):
        for status, response in operation["responses"].items():
            if status == "202":
                assert "Location" in response["headers"], (path, method)
            if status == "503":
                assert "Retry-After" in response["headers"], (path, method)
