"""Marshmallow fields shared by the domain schemas."""

from marshmallow import Schema, ValidationError, fields, validate


class StrictInteger(fields.Integer):
    """A JSON integer: no strings, no floats, no booleans (money and prices are never fractional)."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ValidationError("Not a valid integer.")
        return super()._deserialize(value, attr, data, **kwargs)


def plain_text(max_length: int) -> list:
    """1 to `max_length` characters, none of them a control character (PostgreSQL refuses NUL,
    and a label or symbol has no use for the others)."""
    return [
        validate.Length(min=1, max=max_length),
        validate.Regexp(r"^[^\x00-\x1f\x7f]*$", error="Control characters are not allowed."),
    ]


MAX_ID = 2**63 - 1
ACCOUNT_ID_DESCRIPTION = "the account to act on; default: the X-Account-Id header's, else your main account"


class AccountInBody(Schema):
    """A request body that may name the paper account it acts on (`app.identity.current_account_id`)."""

    accountId = StrictInteger(
        load_only=True, validate=validate.Range(min=1, max=MAX_ID), metadata={"description": ACCOUNT_ID_DESCRIPTION}
    )


class AccountInQuery(Schema):
    """A query string that may name the paper account it reads (an EventSource cannot send headers)."""

    accountId = fields.Integer(
        load_only=True, validate=validate.Range(min=1, max=MAX_ID), metadata={"description": ACCOUNT_ID_DESCRIPTION}
    )
