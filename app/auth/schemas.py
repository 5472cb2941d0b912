from marshmallow import Schema, fields, validate


class NormalizedEmail(fields.Email):
    """An address as stored: stripped and lower-cased *before* it is validated, since case
    folding can grow it (\"İ\" lower-cases to two code points) past the column's 254."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = value.strip().lower()
        return super()._deserialize(value, attr, data, **kwargs)


class EmailSchema(Schema):
    email = NormalizedEmail(required=True, validate=validate.Length(max=254))


class MessageSchema(Schema):
    message = fields.String(required=True)


class TokenQuerySchema(Schema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=256))


class TokenSchema(Schema):
    token = fields.String(required=True, metadata={"description": "JWT; also set as an HttpOnly cookie"})
