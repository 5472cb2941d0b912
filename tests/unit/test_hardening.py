"""The bounded JSON body parser: whatever the body, a value or a ValueError (400), never anything else."""

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.hardening import MAX_JSON_DEPTH, json_depth, parse_json_body


@pytest.mark.parametrize(
    "body",
    [
        "[" * 1000 + "]" * 1000,  # deeper than Python's recursion limit allows json to parse
        '{"a":' * 1000 + "1" + "}" * 1000,
        "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),  # parses, but deeper than we accept
        '{"margin": ' + "9" * 5000 + "}",  # Python refuses int() of over 4300 digits: still a 400
        '{"margin": 1' + "0" * 100 + ".5}",
        '{"margin": 1e999999}',
        b'{"email": "\xff\xfe"}',
        "",
        "{",
        '{"a": NaN}',
    ],
)
def test_hostile_bodies_are_value_errors(body):
    with pytest.raises(ValueError):
        parse_json_body(body)


def test_ordinary_bodies_parse_exactly():
    body = {"asset": "BTC", "margin": 10**15, "nested": [[{"x": None}]], "email": "İx@example.com"}
    assert parse_json_body(json.dumps(body)) == body
    assert parse_json_body("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None


def test_depth_is_counted_without_recursion():
    value: list = []
    for _ in range(50_000):
        value = [value]
    assert json_depth(value) == 50_001
    assert json_depth(7) == 0 and json_depth({"a": [1, {"b": 2}]}) == 3


json_text = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=20,
).map(json.dumps)


@settings(max_examples=500, deadline=None)
@given(st.one_of(json_text, st.text(max_size=300), st.binary(max_size=300)))
def test_fuzzed_bodies_give_a_value_or_a_value_error(body):
    with contextlib.suppress(ValueError):
        parse_json_body(body)


@settings(max_examples=200, deadline=None)
@given(depth=st.integers(min_value=1, max_value=3000), opener=st.sampled_from(["[", '{"k":']))
def test_any_nesting_gives_a_value_or_a_value_error(depth, opener):
    closer = "]" if opener == "[" else "}"
    body = opener * depth + ("0" if opener != "[" else "") + closer * depth
    try:
        assert json_depth(parse_json_body(body)) <= MAX_JSON_DEPTH
    except ValueError:
        assert depth > MAX_JSON_DEPTH


def test_the_api_parser_answers_400_json_for_a_body_too_deep(offline_app):
    """Through the real webargs parser of every route, before anything touches a server."""
    from app.blueprint import BoundedParser
    from app.trading.schemas import CloseTradeSchema

    body = '{"orderId":' * 1000 + '"x"' + "}" * 1000
    with offline_app.test_request_context("/", method="POST", data=body, content_type="application/json"):
        with pytest.raises(Exception) as raised:
            BoundedParser().parse(CloseTradeSchema(), location="json")
        assert getattr(raised.value, "code", None) == 400
