from marshmallow import Schema, fields, validate

from app.account.service import PERIODS, TIMEFRAMES
from app.balances.schemas import BalancesSchema
from app.fields import AccountInQuery
from core.enums import LedgerKind, ResetStatus

FORMATS = validate.OneOf(["json", "csv"])


class ActivityQuerySchema(AccountInQuery):
    type = fields.String(validate=validate.OneOf([k.value for k in LedgerKind]))
    cursor = fields.Integer(validate=validate.Range(min=1, max=2**63 - 1), metadata={"description": "nextCursor"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    format = fields.String(load_default="json", validate=FORMATS, metadata={"description": "csv: the whole history"})


class ActivitySchema(Schema):
    id = fields.String(required=True)
    type = fields.String(required=True, metadata={"enum": [k.value for k in LedgerKind]})
    usd = fields.Integer(required=True, metadata={"description": "signed change of free USD, USD units"})
    lockedMargin = fields.Integer(required=True, metadata={"description": "signed change of locked margin"})
    orderId = fields.String(allow_none=True)
    time = fields.DateTime(required=True)


class ActivitiesSchema(Schema):
    activities = fields.List(fields.Nested(ActivitySchema), required=True)
    decimals = fields.Integer(required=True)
    nextCursor = fields.String(metadata={"description": "pass as `cursor` for the next (older) page"})


class PortfolioQuerySchema(AccountInQuery):
    period = fields.String(load_default="1W", validate=validate.OneOf(list(PERIODS)))
    timeframe = fields.String(load_default="1h", validate=validate.OneOf(list(TIMEFRAMES)))


class EquityPointSchema(Schema):
    time = fields.Integer(required=True, metadata={"description": "unix seconds (bin start; the last point is now)"})
    equity = fields.Integer(required=True, metadata={"description": "cash + lockedMargin + unrealizedPnl"})
    cash = fields.Integer(required=True)
    lockedMargin = fields.Integer(required=True)
    unrealizedPnl = fields.Integer(required=True)


class PortfolioHistorySchema(Schema):
    points = fields.List(fields.Nested(EquityPointSchema), required=True)
    resets = fields.List(fields.Integer(), required=True, metadata={"description": "unix seconds of resets"})
    decimals = fields.Integer(required=True)


class ResetSchema(Schema):
    resetId = fields.String(attribute="id", required=True)
    status = fields.String(required=True, metadata={"enum": [s.value for s in ResetStatus]})
    closedPositions = fields.Integer(attribute="closed_positions", allow_none=True)
    balance = fields.Nested(BalancesSchema)
