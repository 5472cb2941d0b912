from marshmallow import Schema, fields


class PartSchema(Schema):
    ok = fields.Boolean(required=True)
    detail = fields.String()


class PriceHealthSchema(Schema):
    ok = fields.Boolean(required=True)
    ageSeconds = fields.Float(allow_none=True)


class FeedSchema(Schema):
    ok = fields.Boolean(required=True)
    state = fields.String(allow_none=True)
    reconnects = fields.Integer(allow_none=True)
    lastMessageAgeSeconds = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True))


class ReadinessSchema(Schema):
    status = fields.String(required=True, metadata={"description": "ok or unavailable"})
    database = fields.Boolean(metadata={"description": "the database answered"})
    redis = fields.Boolean(metadata={"description": "Redis answered"})


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"description": "ok or degraded"})
    database = fields.Nested(PartSchema, required=True)
    redis = fields.Nested(PartSchema, required=True)
    engine = fields.Nested(PartSchema, required=True)
    feed = fields.Nested(FeedSchema, required=True)
    prices = fields.Dict(keys=fields.String(), values=fields.Nested(PriceHealthSchema), required=True)
