"""Two engine processes, each the one writer of half the shards: an account's work reaches only
its shard's engine, a batch never takes another shard's order, and health names a shard nobody
consumes."""

import pytest

from app.extensions import db, redis_client
from app.models import Order
from core.shards import shard_of, shard_queue
from tests.support.trading import BTC_ASK, BTC_BID, open_trade, user_on_engine
from tests.support.waiting import eventually
from workers.shards import account_shard

pytestmark = pytest.mark.usefixtures("engine_worker")


def test_the_engines_sql_computes_the_same_shard_as_the_core(app_ctx, app):
    ids = [*range(1, 5001, 7), 2**31 - 1]
    rows = db.session.execute(
        db.select(db.literal_column("id"), account_shard(db.literal_column("id"))).select_from(
            db.func.unnest(ids).alias("id")
        )
    ).all()
    assert {row[0]: row[1] for row in rows} == {i: shard_of(i, app.config["ENGINE_SHARDS"]) for i in ids}


def test_an_accounts_orders_wait_for_their_own_shards_engine(app, client, make_user, set_price, engine_worker):
    _, odd_headers = user_on_engine(make_user, app, 1)
    _, even_headers = user_on_engine(make_user, app, 0)
    try:
        engine_worker.engines[1].stop()
        set_price("BTC", BTC_BID, BTC_ASK)  # fresh after however long the engine took to stop
        app.config["TRADE_WAIT_S"] = 1
        waiting = open_trade(client, odd_headers, margin=10_000)
        assert waiting.status_code == 202
        app.config["TRADE_WAIT_S"] = 15
        # the even engine executes its own account's order, and its batch leaves the odd one pending
        assert open_trade(client, even_headers, margin=10_000).status_code == 200
        with app.app_context():
            assert db.session.get(Order, waiting.json["orderId"]).status == "pending"
        engine = client.get("/api/v1/health").json["engine"]
        assert not engine["ok"] and "no engine consumes shards 1,3,5,7,9,11,13,15" in engine["detail"]
    finally:
        app.config["TRADE_WAIT_S"] = 15
        engine_worker.engines[1].start()

    def executed():
        with app.app_context():
            return db.session.get(Order, waiting.json["orderId"]).status == "open"

    eventually(executed, timeout=20)
    assert client.get("/api/v1/health").json["engine"]["detail"] == "engine0@test, engine1@test"


def queued_messages(shard: int) -> int:
    return sum(redis_client.llen(key) for key in redis_client.keys(f"{shard_queue(shard)}*"))


def test_orders_accepted_while_a_wake_up_is_pending_send_no_task_of_their_own(
    app, make_user, make_order, set_price, engine_worker
):
    from app.dispatch import wake_engine

    account_id, _ = user_on_engine(make_user, app, 1)
    shard = shard_of(account_id, app.config["ENGINE_SHARDS"])
    try:
        engine_worker.engines[1].stop()
        set_price("BTC", BTC_BID, BTC_ASK)
        ids = [make_order(account_id, margin=1_000) for _ in range(4)]
        before = queued_messages(shard)
        with app.app_context():
            for _ in ids:  # what the API does after committing each
                wake_engine(account_id)
        assert queued_messages(shard) - before == 1
    finally:
        engine_worker.engines[1].start()

    def executed():
        with app.app_context():
            return {db.session.get(Order, order_id).status for order_id in ids} == {"open"}

    eventually(executed, timeout=20)  # the one wake-up ran all four


def test_a_running_wake_up_holds_its_shards_free_flags_and_lets_go_only_those(app):
    from core.keys import ENGINE_WAKE_FLAG
    from core.wakeups import claim_wake_up, hold_wake_ups, release_wake_ups

    flags = [ENGINE_WAKE_FLAG.format(shard=shard) for shard in (100, 101, 102)]
    woken, free, queued = 100, 101, 102  # shards of no engine here: only their flags are in play
    redis_client.delete(*flags)
    assert claim_wake_up(redis_client, woken)  # the wake-up now running was sent for this one
    assert claim_wake_up(redis_client, queued)  # another shard's wake-up, still queued

    held = hold_wake_ups(redis_client, [woken, free, queued], woken=woken)
    assert sorted(held) == [woken, free]  # the queued wake-up's flag stays with it
    assert not release_wake_ups(redis_client, held)  # nobody came while they were held
    assert hold_wake_ups(redis_client, [woken, free, queued], woken=woken) == held
    assert not any(claim_wake_up(redis_client, shard) for shard in (woken, free, queued))

    assert release_wake_ups(redis_client, held)  # claims were refused: the engine must read once more
    assert claim_wake_up(redis_client, woken) and claim_wake_up(redis_client, free)
    assert not claim_wake_up(redis_client, queued)  # still one queued wake-up for it, never two
    redis_client.delete(*flags)


def test_a_lingering_wake_up_takes_the_claims_refused_meanwhile_and_keeps_its_flags(app):
    from core.keys import ENGINE_WAKE_FLAG
    from core.wakeups import claim_wake_up, hold_wake_ups, release_wake_ups, take_claims

    flags = [ENGINE_WAKE_FLAG.format(shard=shard) for shard in (100, 101)]
    redis_client.delete(*flags)
    held = hold_wake_ups(redis_client, [100, 101], woken=100)
    assert not take_claims(redis_client, held)  # nothing came
    assert not claim_wake_up(redis_client, 101)  # an order lands: held, so no task of its own
    assert take_claims(redis_client, held)  # the wake-up sees it must read again
    assert not take_claims(redis_client, held)  # counted once: the counts started over
    assert not claim_wake_up(redis_client, 100)  # and the flags are still held
    assert release_wake_ups(redis_client, held)
    redis_client.delete(*flags)
