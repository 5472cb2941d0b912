from marshmallow import Schema, fields

from core.assets import SEED_ASSETS


class AmountSchema(Schema):
    balance = fields.Integer(required=True)
    decimals = fields.Integer(required=True)


BalancesSchema = Schema.from_dict(
    {
        "USD": fields.Nested(AmountSchema, required=True),
        "lockedMargin": fields.Nested(AmountSchema, required=True),
        **{symbol: fields.Nested(AmountSchema, required=True) for symbol in SEED_ASSETS},
    },
    name="Balances",
)
