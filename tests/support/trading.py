"""Trades as a client makes them, and accounts placed on a chosen engine."""

BTC_BID, BTC_ASK = 1_000_000_000, 1_000_100_000  # 100000.0000 / 100010.0000
PERP = "BTC_USDC_PERP"  # the simulator's: tick 0.1, so prices in tenths


def open_trade(client, headers, **overrides):
    body = {"asset": "BTC", "type": "long", "margin": 100_000, "leverage": 10, **overrides}
    return client.post("/api/v1/trade/create", json=body, headers=headers)


def usd_balance(client, headers) -> int:
    response = client.get("/api/v1/balance/usd", headers=headers)
    assert response.status_code == 200
    return response.json["balance"]


def user_on_engine(make_user, app, engine_index: int, processes: int = 2):
    """A new user whose shard belongs to engine process `engine_index` of `processes`."""
    from core.shards import shard_of

    while True:
        account_id, headers = make_user()
        if shard_of(account_id, app.config["ENGINE_SHARDS"]) % processes == engine_index:
            return account_id, headers


def open_perpetual(client, make_user, perpetuals, side: str, leverage: int, user=None) -> tuple[int, dict]:
    """A position on the perpetual (of a new user, or `user`'s), opened at a quote and mark about 118,320."""
    quote, mark = perpetuals
    quote(1_183_200, 1_183_202)
    mark(1_183_201)
    account_id, headers = user or make_user()
    body = {"symbol": PERP, "type": side, "margin": 100_000, "leverage": leverage}
    opened = client.post("/api/v1/trade/create", json=body, headers=headers)
    assert opened.status_code == 200 and opened.json["status"] == "open", opened.json
    return account_id, opened.json
