"""TRADE_RATE_LIMIT: one budget per user (over all their accounts) and every route that enqueues engine work, so a
runaway loop fills its own budget, not its shard's queue. A fixed window counted in Redis in one
pipelined round trip (INCR and EXPIRE); Flask-Limiter cost these routes about a millisecond of
web CPU a request (its bookkeeping, and a second round trip for its headers)."""

import functools
import time

import redis
from flask import current_app
from limits import parse

from app.errors import ErrorCode, error_response
from app.extensions import redis_client
from app.identity import current_user_id
from core.keys import TRADE_RATE_KEY


@functools.cache
def rate_limit(text: str) -> tuple[int, int]:
    """A limit's text ("20/second") as (amount, window seconds)."""
    limit = parse(text)
    return limit.amount, limit.get_expiry()


def trade_rate_limited(view):
    """After authentication: a 429 `rate_limited` with `Retry-After` past the user's budget.
    Redis down: the request goes on (limits fail open, as the sign-in limits do)."""

    @functools.wraps(view)
    def limited(*args, **kwargs):
        amount, window_s = rate_limit(current_app.config["TRADE_RATE_LIMIT"])
        now = time.time()
        window = int(now // window_s)
        key = TRADE_RATE_KEY.format(user=current_user_id(), window=window)
        try:
            with redis_client.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, window_s + 1)
                count, _ = pipe.execute()
        except redis.RedisError:
            return view(*args, **kwargs)
        if count > amount:
            response = error_response(
                429, f"Rate limit exceeded: {amount} per {window_s} s per user", ErrorCode.RATE_LIMITED
            )
            response.headers["Retry-After"] = str(max(1, int((window + 1) * window_s - now + 0.999)))
            return response
        return view(*args, **kwargs)

    return limited
