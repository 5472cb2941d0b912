"""Marshmallow fields shared by the domain schemas."""

from marshmallow import ValidationError, fields, validate


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
