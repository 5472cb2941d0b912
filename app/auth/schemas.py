from marshmallow import Schema, fields, validate


class EmailSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))


class MessageSchema(Schema):
    message = fields.String(required=True)


class TokenQuerySchema(Schema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=256))


class TokenSchema(Schema):
    token = fields.String(required=True, metadata={"description": "JWT; also set as an HttpOnly cookie"})
