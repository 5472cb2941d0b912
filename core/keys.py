"""Every Redis key and pub/sub channel the processes share, in one place."""

PRICE_KEY = "price:{asset}"  # hash: bid, ask, time (µs), u (update id)
PRICE_CHANNEL = "prices:{asset}"  # one JSON message per stored quote
FEED_STATUS_KEY = "feed:status"  # hash: state, reconnects, last:<ASSET> (receipt time, µs)
FEED_LAST_MESSAGE_FIELD = "last:"
ORDER_EVENTS_CHANNEL = "order-events:{order_id}"  # the engine's answer to a waiting request
TRIGGER_CHECK_FLAG = "engine:trigger-check-pending:{asset}"  # coalesces trigger checks per asset
