"""Backpack's request signing (`core.signing`): Backpack's own test vector, the text each kind of
request signs, and the refusals, with Backpack's codes."""

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import signing
from core.signing import Headers, SigningError

SEED = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes 0..31
PUBLIC = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
NOW = 1_750_793_021_519


def headers(signature: str, timestamp: int = NOW, window: int = 5000) -> Headers:
    return signing.parse_headers(
        {"X-API-Key": PUBLIC, "X-Signature": signature, "X-Timestamp": str(timestamp), "X-Window": str(window)}
    )


def test_backpacks_test_vector_verifies():
    vector = "a4gmR8Xzxq4kesPQPh+39Xb0N8FwQHErhW0+IqFZwB16ABD3p1x0BQdEvhLGYJ5A22WNBDqY0y+j7dyg1MURBw=="
    assert (
        signing.signed_text("balanceQuery", {}, NOW, 5000)
        == "instruction=balanceQuery&timestamp=1750793021519&window=5000"
    )
    assert signing.sign(SEED, "instruction=balanceQuery&timestamp=1750793021519&window=5000") == vector
    signing.verify(signing.public_key_bytes(PUBLIC), headers(vector), "balanceQuery", {})
    subscribe = "DEytVjBPUJPNGqMWhoFrRnsyaD9AgpeWqvS9jRrnNbGUKyTLfEas10Q5EZ3KjJWU9PxVsfKDqd+oM0GEuFiCAA=="
    assert signing.sign(SEED, signing.signed_text("subscribe", {}, NOW, 5000)) == subscribe
    with pytest.raises(SigningError) as refused:
        signing.verify(signing.public_key_bytes(PUBLIC), headers(vector), "orderExecute", {})
    assert (refused.value.code, refused.value.message) == ("INVALID_SIGNATURE", "Invalid signature")


def test_the_signed_text_sorts_parameters_and_writes_booleans_as_json_does():
    order = {"symbol": "SOL_USDC_PERP", "side": "Bid", "orderType": "Limit", "quantity": "0.01", "postOnly": False}
    assert signing.signed_text("orderExecute", order, NOW, 60000) == (
        "instruction=orderExecute&orderType=Limit&postOnly=false&quantity=0.01&side=Bid&symbol=SOL_USDC_PERP"
        "&timestamp=1750793021519&window=60000"
    )
    batch = [{"symbol": "A", "quantity": "1"}, {"symbol": "B", "clientId": 7}]
    assert signing.signed_text("orderExecute", batch, NOW, 5000) == (
        "instruction=orderExecute&quantity=1&symbol=A&instruction=orderExecute&clientId=7&symbol=B"
        "&timestamp=1750793021519&window=5000"
    )


def test_older_clients_title_case_booleans_are_accepted_too():
    body = {"symbol": "SOL_USDC_PERP", "reduceOnly": True}
    titled = signing.signed_text("orderExecute", body, NOW, 5000, title_booleans=True)
    assert "reduceOnly=True" in titled
    signing.verify(signing.public_key_bytes(PUBLIC), headers(signing.sign(SEED, titled)), "orderExecute", body)


params = st.dictionaries(
    st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=12),
    st.one_of(st.booleans(), st.integers(0, 2**32), st.text("0123456789.", min_size=1, max_size=10)),
    max_size=8,
)


@given(params, params)
def test_a_signature_verifies_for_its_own_parameters_only(signed, other):
    signature = signing.sign(SEED, signing.signed_text("orderExecute", signed, NOW, 5000))
    key = signing.public_key_bytes(PUBLIC)
    signing.verify(key, headers(signature), "orderExecute", signed)
    if signing.signed_text("orderExecute", other, NOW, 5000) != signing.signed_text("orderExecute", signed, NOW, 5000):
        with pytest.raises(SigningError):
            signing.verify(key, headers(signature), "orderExecute", other)


@pytest.mark.parametrize(
    "given_headers, message",
    [
        ({}, "Missing X-API-Key, X-Signature or X-Timestamp header"),
        (
            {"X-API-Key": PUBLIC, "X-Signature": "bm90IGEgc2lnbmF0dXJl", "X-Timestamp": "1"},
            "Invalid X-Signature header",
        ),
        (
            {"X-API-Key": PUBLIC, "X-Signature": base64.b64encode(bytes(64)).decode(), "X-Timestamp": "1e3"},
            "X-Timestamp and X-Window are whole milliseconds",
        ),
        (
            {
                "X-API-Key": PUBLIC,
                "X-Signature": base64.b64encode(bytes(64)).decode(),
                "X-Timestamp": "1",
                "X-Window": "60001",
            },
            "X-Window must be between 1 and 60000 ms",
        ),
    ],
)
def test_malformed_headers_are_refused_by_name(given_headers, message):
    with pytest.raises(SigningError) as refused:
        signing.parse_headers(given_headers)
    assert (refused.value.code, refused.value.message) == ("INVALID_CLIENT_REQUEST", message)


def test_a_request_outside_its_window_has_expired_and_one_from_the_future_is_refused():
    signed = headers(base64.b64encode(bytes(64)).decode(), timestamp=NOW, window=5000)
    signing.check_time(signed, NOW + 5000)
    with pytest.raises(SigningError, match="Request has expired"):
        signing.check_time(signed, NOW + 5001)
    with pytest.raises(SigningError, match="in the future"):
        signing.check_time(signed, NOW - 1001)


def test_a_generated_pair_signs_what_its_public_key_verifies():
    seed, public = signing.new_key_pair()
    text = signing.signed_text("subscribe", {}, NOW, 5000)
    signature = base64.b64decode(signing.sign(seed, text))
    signing.verify(signing.public_key_bytes(public), Headers(public, signature, NOW, 5000), "subscribe", {})
    with pytest.raises(SigningError):
        signing.public_key_bytes("c2hvcnQ=")
