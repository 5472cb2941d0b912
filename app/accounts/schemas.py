from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.fields import StrictInteger, plain_text
from core.enums import AccountMode

MAX_STARTING_BALANCE = 10_000_000_000  # USD cents: $100 million
LEVERAGE_LIMITS = validate.Range(min=1, max=100)


class NewAccountSchema(Schema):
    name = fields.String(required=True, validate=plain_text(64))
    mode = fields.String(
        load_default=AccountMode.HEDGING.value,
        validate=validate.OneOf([mode.value for mode in AccountMode]),
        metadata={
            "enum": [mode.value for mode in AccountMode],
            "description": "hedging: every trade its own isolated position (/trade/create); "
            "netting: Backpack's, one position per market, cross margin (/orders)",
        },
    )
    startingBalance = StrictInteger(
        validate=validate.Range(min=1, max=MAX_STARTING_BALANCE),
        metadata={"description": "USD cents; default STARTING_BALANCE (500000)"},
    )


class AccountUpdateSchema(Schema):
    name = fields.String(validate=plain_text(64))
    leverageLimit = StrictInteger(validate=LEVERAGE_LIMITS)

    @validates_schema
    def changes_something(self, data, **_):
        if not data:
            raise ValidationError("name or leverageLimit", "_schema")


class AccountSchema(Schema):
    id = fields.Integer(required=True, attribute="account.id", metadata={"description": "X-Account-Id's value"})
    name = fields.String(required=True, attribute="account.name")
    mode = fields.String(required=True, attribute="account.mode", metadata={"enum": [m.value for m in AccountMode]})
    main = fields.Boolean(required=True, metadata={"description": "the account sign-up opened: the default"})
    leverageLimit = fields.Integer(required=True, attribute="account.leverage_limit")
    startingBalance = fields.Integer(required=True, attribute="account.starting_balance")
    usd = fields.Integer(required=True, metadata={"description": "free USD, cents"})
    lockedMargin = fields.Integer(required=True, attribute="locked_margin")
    createdAt = fields.DateTime(required=True, attribute="account.created_at")
    archivedAt = fields.DateTime(allow_none=True, attribute="account.archived_at")
