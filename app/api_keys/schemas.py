from marshmallow import Schema, fields, validate

from app.fields import AccountInBody, plain_text


class NewApiKeySchema(AccountInBody):
    label = fields.String(required=True, validate=plain_text(100))
    publicKey = fields.String(
        validate=validate.Length(min=1, max=100),
        metadata={"description": "your own base64 ED25519 public key; omitted: the service generates a pair"},
    )


class ApiKeySchema(Schema):
    id = fields.Integer(required=True)
    accountId = fields.Integer(required=True, attribute="account_id")
    label = fields.String(required=True)
    publicKey = fields.String(required=True, attribute="public_key", metadata={"description": "send as X-API-Key"})
    createdAt = fields.DateTime(required=True, attribute="created_at")
    lastUsedAt = fields.DateTime(allow_none=True, attribute="last_used_at")


class CreatedApiKeySchema(ApiKeySchema):
    seed = fields.String(
        metadata={"description": "a generated pair's secret (base64, Backpack's format): in this answer only"}
    )
