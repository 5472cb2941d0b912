"""Backpack's request signing, verified exactly as Backpack verifies it (pure: no I/O, no clock).

A signed request carries `X-API-Key` (the base64 ED25519 public key), `X-Signature` (base64),
`X-Timestamp` (ms) and `X-Window` (ms, at most 60000, default 5000). The signed text is
`instruction=<instruction>&<its parameters sorted by key, k=v joined by &>&timestamp=<ts>&window=<w>`,
the parameters being the query of a GET and the JSON body otherwise; a batch of orders signs each
order as `instruction=orderExecute&<its sorted parameters>`, joined by `&`, with the timestamp and
window once at the end. Values are written as the JSON decodes them: booleans `true`/`false`
(older clients send `True`: accepted too), numbers as their digits, strings as they are.
"""

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

DEFAULT_WINDOW_MS = 5000
MAX_WINDOW_MS = 60000
FUTURE_TOLERANCE_MS = 1000  # a client clock slightly ahead is not refused


class SigningError(ValueError):
    """Why a signed request is refused; `code` is Backpack's error code for it."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _value(value: object, title_booleans: bool) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
        return text.title() if title_booleans else text
    if value is None:
        return ""
    return str(value)


def _pairs(params: Mapping[str, object], title_booleans: bool) -> str:
    return "&".join(f"{key}={_value(params[key], title_booleans)}" for key in sorted(params) if params[key] is not None)


def signed_text(
    instruction: str,
    params: Mapping[str, object] | Sequence[Mapping[str, object]],
    timestamp_ms: int,
    window_ms: int,
    title_booleans: bool = False,
) -> str:
    """What the client signed: one request's parameters, or a batch of orders (a list)."""
    if isinstance(params, Mapping):
        segments = [f"instruction={instruction}"]
        if pairs := _pairs(params, title_booleans):
            segments.append(pairs)
    else:
        segments = []
        for order in params:
            pairs = _pairs(order, title_booleans)
            segments.append(f"instruction={instruction}" + (f"&{pairs}" if pairs else ""))
    segments.append(f"timestamp={timestamp_ms}&window={window_ms}")
    return "&".join(segments)


def public_key_bytes(text: str) -> bytes:
    """A base64 ED25519 public key (32 bytes); SigningError otherwise."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SigningError("INVALID_CLIENT_REQUEST", "X-API-Key is not a base64 ED25519 public key")
    return raw


@dataclass(frozen=True)
class Headers:
    api_key: str
    signature: bytes
    timestamp_ms: int
    window_ms: int


def parse_headers(headers: Mapping[str, str]) -> Headers:
    """The four signing headers, checked for shape (Backpack's codes and messages)."""
    key, signature, timestamp = (headers.get(name) for name in ("X-API-Key", "X-Signature", "X-Timestamp"))
    if not key or not signature or not timestamp:
        raise SigningError("INVALID_CLIENT_REQUEST", "Missing X-API-Key, X-Signature or X-Timestamp header")
    try:
        signature_bytes = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        signature_bytes = b""
    if len(signature_bytes) != 64:
        raise SigningError("INVALID_CLIENT_REQUEST", "Invalid X-Signature header")
    window = headers.get("X-Window") or str(DEFAULT_WINDOW_MS)
    if not timestamp.isascii() or not timestamp.isdigit() or not window.isascii() or not window.isdigit():
        raise SigningError("INVALID_CLIENT_REQUEST", "X-Timestamp and X-Window are whole milliseconds")
    window_ms = int(window)
    if not 0 < window_ms <= MAX_WINDOW_MS:
        raise SigningError("INVALID_CLIENT_REQUEST", f"X-Window must be between 1 and {MAX_WINDOW_MS} ms")
    return Headers(key, signature_bytes, int(timestamp), window_ms)


def check_time(headers: Headers, now_ms: int) -> None:
    """Refused outside its window (Backpack: "Request has expired"), or from too far ahead."""
    if now_ms - headers.timestamp_ms > headers.window_ms:
        raise SigningError("INVALID_CLIENT_REQUEST", "Request has expired")
    if headers.timestamp_ms - now_ms > FUTURE_TOLERANCE_MS:
        raise SigningError("INVALID_CLIENT_REQUEST", "X-Timestamp is in the future")


def verify(
    public_key: bytes,
    headers: Headers,
    instruction: str,
    params: Mapping[str, object] | Sequence[Mapping[str, object]],
) -> None:
    """The signature over the request's text, with lowercase booleans or (older clients) `True`."""
    key = Ed25519PublicKey.from_public_bytes(public_key)
    texts = {
        signed_text(instruction, params, headers.timestamp_ms, headers.window_ms, title) for title in (False, True)
    }
    for text in texts:
        try:
            key.verify(headers.signature, text.encode())
            return
        except InvalidSignature:
            continue
    raise SigningError("INVALID_SIGNATURE", "Invalid signature")


def new_key_pair() -> tuple[str, str]:
    """A paper key pair: (the base64 32-byte seed, Backpack's secret format; the base64 public key)."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(seed).decode(), base64.b64encode(public).decode()


def sign(seed_b64: str, text: str) -> str:
    """What a client sends as X-Signature for `text` (tests and examples sign as a bot would)."""
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed_b64)[:32])
    return base64.b64encode(private.sign(text.encode())).decode()
