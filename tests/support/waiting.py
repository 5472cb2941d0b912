"""Waiting for what another process does, with a bound."""

import time


def eventually(check, timeout: float = 10.0, interval: float = 0.02):
    """Wait until `check()` is truthy and return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def wait_for_status(app, order_id, status, timeout=20):
    from app.extensions import db
    from app.models import Order

    def reached():
        with app.app_context():
            order = db.session.get(Order, order_id)
            return order if order.status == status else None

    return eventually(reached, timeout, interval=0.05)
