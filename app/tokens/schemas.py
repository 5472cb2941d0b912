from marshmallow import Schema, fields

from app.fields import plain_text


class NewAccessTokenSchema(Schema):
    label = fields.String(required=True, validate=plain_text(100))


class AccessTokenSchema(Schema):
    id = fields.Integer(required=True)
    label = fields.String(required=True)
    prefix = fields.String(required=True, metadata={"description": "the secret's first characters"})
    createdAt = fields.DateTime(required=True, attribute="created_at")
    lastUsedAt = fields.DateTime(allow_none=True, attribute="last_used_at")


class CreatedAccessTokenSchema(AccessTokenSchema):
    token = fields.String(
        required=True, attribute="secret", metadata={"description": "the secret: shown once, never again"}
    )
