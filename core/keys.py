"""Every Redis key and pub/sub channel the processes share, in one place."""

PRICE_KEY = "price:{asset}"  # hash: bid, ask, time (µs), u (update id)
PRICE_CHANNEL = "prices:{asset}"  # one JSON message per stored quote
FEED_STATUS_KEY = "feed:status"  # hash: state, reconnects, last:<ASSET> (receipt time, µs)
FEED_LAST_MESSAGE_FIELD = "last:"  # + asset: the last frame of that market (or socket ping)
BOOK_KEY = "book:{asset}"  # JSON {"bids", "asks": [[price, size]...] best first, "u", "time"}; absent while syncing
# the account's typed events (`core.events`, one JSON form each), published by the engine after
# each commit that changes its orders: they answer the request waiting and feed the account's streams
ACCOUNT_EVENTS_CHANNEL = "account-events:{account_id}"
TRADES_CHANNEL = "trades:{symbol}"  # a netting order's fills as the market's public trades (`core.net_events`)
TRIGGER_CHECK_FLAG = "engine:trigger-check-pending:{asset}:{shard}"  # coalesces trigger checks per asset and shard
# set while a wake-up task for the shard's engine is on its way or the engine holds it while it runs:
# the orders accepted meanwhile send none; counts the claims (`core.wakeups`)
ENGINE_WAKE_FLAG = "engine:wake-pending:{shard}"
# hash per market: "<shard>:<kind>" -> the shard's nearest trigger price of that kind (`core.triggers`)
TRIGGER_LEVELS_KEY = "trigger-levels:{asset}"
# set (with an expiry) when a sweep recomputed the shard's levels of every market: the next sweeps skip it
TRIGGER_LEVELS_SWEPT_KEY = "trigger-levels-swept:{shard}"
# a web process's count of open event streams, refreshed while its hub runs (expires with the process)
STREAM_LISTENERS_KEY = "streams:listeners:{process}"
STREAM_LISTENERS_PATTERN = "streams:listeners:*"
# hash per perpetual market: mark, index, rate (decimal strings), next (funding, ms), time (µs)
MARK_KEY = "mark:{market}"
# hash per perpetual market: funding boundary (ms) -> "<rate> <mark>", the last mark event before it,
# recorded with the mark that closed its interval; copied to PostgreSQL (`funding_rates`) by the engine
FUNDING_KEY = "funding:{market}"
BACKPACK_RATE_KEY = (
    "backpack-rate:{account}:{window}"  # signed requests of an account in one BACKPACK_RATE_LIMIT window
)
TRADE_RATE_KEY = "trade-rate:{user}:{window}"  # trade requests of a user (all accounts) in one TRADE_RATE_LIMIT window
