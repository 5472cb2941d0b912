"""Conventions of the OpenAPI document that every route shares, applied in one place: an
`operationId` per operation, how a caller authenticates, `int64` on every integer (amounts and
quantities exceed int32), `Location` on every 202, `Retry-After` on every 503, null listed in every nullable enum."""

import re

from apispec import BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin, OpenAPIConverter

SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "The JWT of a magic-link sign-in, or a personal access token (`pat_...`, POST /api/v1/tokens)",
    },
    "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "access_token_cookie"},
}
RETRY_AFTER = {"type": "integer", "format": "int64"}
AUTHENTICATED = [{"bearerAuth": []}, {"cookieAuth": []}]
SECURITY_MARK = "x-authenticated"  # set by `app.identity.authenticated`, replaced by `security` here


def operation_id(method: str, path: str) -> str:
    """postTradeCreate for POST /api/v1/trade/create, getTradeByOrderId for GET /api/v1/trade/{order_id}."""
    words = []
    for segment in path.removeprefix("/api/v1").strip("/").split("/"):
        parameter = re.fullmatch(r"\{(\w+)\}", segment)
        words += ["by", *parameter.group(1).split("_")] if parameter else re.split(r"[^A-Za-z0-9]+", segment)
    return method.lower() + "".join(word[:1].upper() + word[1:] for word in words if word)


def int64(node) -> None:
    """Every integer schema under `node` is int64 (amounts and quantities exceed int32)."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            node.setdefault("format", "int64")
        for value in node.values():
            int64(value)
    elif isinstance(node, list):
        for value in node:
            int64(value)


class DocumentConverter(OpenAPIConverter):
    def init_attribute_functions(self):
        super().init_attribute_functions()
        self.attribute_functions += [self.integers_are_int64, self.nullable_enums_list_null]

    def integers_are_int64(self, field, ret, **kwargs) -> dict:
        return {"format": "int64"} if ret.get("type") == "integer" else {}

    def nullable_enums_list_null(self, field, ret, **kwargs) -> dict:
        """OpenAPI 3.0: `nullable` does not widen an `enum`; a generated client refuses a null
        close reason unless the enum lists null."""
        if field.allow_none and "enum" in ret and None not in ret["enum"]:
            return {"enum": [*ret["enum"], None]}
        return {}


class DocumentMarshmallowPlugin(MarshmallowPlugin):
    """Schemas, parameters and the responses flask-smorest registers itself (Error, pagination)."""

    Converter = DocumentConverter


class OperationConventions(BasePlugin):
    def path_helper(self, path=None, operations=None, parameters=None, **kwargs):
        int64(parameters)  # path parameters, from the URL rule's converters

    def operation_helper(self, path=None, operations=None, **kwargs):
        int64(operations)
        for method, operation in (operations or {}).items():
            operation.setdefault("operationId", operation_id(method, path))
            if operation.pop(SECURITY_MARK, False):
                operation["security"] = AUTHENTICATED
            responses = operation.get("responses", {})
            for status, response in responses.items():
                headers = response.setdefault("headers", {}) if isinstance(response, dict) else {}
                if str(status) == "202":
                    headers["Location"] = {
                        "description": "Where the outcome shows: the order, or the balance after a reset",
                        "schema": {"type": "string"},
                    }
                elif str(status) == "503":
                    headers["Retry-After"] = {"description": "Seconds to wait", "schema": RETRY_AFTER}
                if isinstance(response, dict) and not headers:
                    del response["headers"]


def spec_plugins() -> dict:
    """flask-smorest's `spec_kwargs`: fresh plugins for each app (they hold their spec)."""
    return {"marshmallow_plugin": DocumentMarshmallowPlugin(), "extra_plugins": [OperationConventions()]}


def init_api(api) -> None:
    for name, scheme in SECURITY_SCHEMES.items():
        api.spec.components.security_scheme(name, scheme)
