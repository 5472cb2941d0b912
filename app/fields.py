"""Marshmallow fields shared by the domain schemas."""

from marshmallow import ValidationError, fields


class StrictInteger(fields.Integer):
    """A JSON integer: no strings, no floats, no booleans (money and prices are never fractional)."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ValidationError("Not a valid integer.")
        return super()._deserialize(value, attr, data, **kwargs)
