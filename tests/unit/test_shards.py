"""Accounts to shards, shards to engine processes, engine tasks to shard queues."""

from collections import Counter

import pytest

from config import Config, ConfigError
from core.shards import format_shard_set, parse_shard_set, process_shards, shard_of, shard_queue
from core.tasks import CHECK_TRIGGERS, SEND_SIGN_IN_LINK, WAKE_UP, EngineRouter

BASE = {"DATABASE_URL": "postgres://u@h/db", "REDIS_URL": "redis://h:1/0", "JWT_SECRET_KEY": "k" * 40}


def test_an_account_always_maps_to_the_same_shard_in_range():
    assert [shard_of(account, 16) for account in range(1, 9)] == [9, 3, 13, 7, 1, 11, 5, 15]
    assert all(0 <= shard_of(account, shards) < shards for account in range(1, 2000) for shards in (1, 2, 7, 16, 64))


@pytest.mark.parametrize("shards", [2, 16, 64])
def test_sequential_accounts_spread_evenly(shards):
    counts = Counter(shard_of(account, shards) for account in range(1, 100 * shards + 1))
    assert len(counts) == shards and max(counts.values()) <= 1.05 * min(counts.values())


def test_a_strided_run_of_accounts_does_not_pile_onto_one_shard():
    # ids that share their low bits (every 16th account) would all land on one shard under `id % 16`
    counts = Counter(shard_of(account, 16) for account in range(16, 16 * 1000 + 1, 16))
    assert len(counts) == 16 and max(counts.values()) < 2 * 1000 / 16


@pytest.mark.parametrize("processes", [1, 2, 3, 5, 16])
def test_engine_processes_own_disjoint_sets_covering_every_shard(processes):
    sets = [process_shards(index, processes, 16) for index in range(processes)]
    assert sum(len(owned) for owned in sets) == 16 and frozenset().union(*sets) == frozenset(range(16))


@pytest.mark.parametrize("index, processes", [(2, 2), (-1, 2), (0, 17)])
def test_an_impossible_share_is_refused(index, processes):
    with pytest.raises(ValueError):
        process_shards(index, processes, 16)


@pytest.mark.parametrize(
    "text, expected", [("0-7", set(range(8))), ("3", {3}), ("0,2, 4-5", {0, 2, 4, 5}), ("15", {15})]
)
def test_shard_sets_parse_and_format_back(text, expected):
    assert parse_shard_set(text, 16) == expected
    assert parse_shard_set(format_shard_set(expected), 16) == expected


def test_shard_sets_format_runs_as_ranges():
    assert format_shard_set({5, 0, 1, 2, 9, 10}) == "0-2,5,9-10"


@pytest.mark.parametrize("text", ["16", "7-3", "-1", "a", "0-", "1,,2"])
def test_a_shard_set_outside_the_shards_is_refused(text):
    with pytest.raises(ValueError):
        parse_shard_set(text, 16)


def test_engine_tasks_route_to_their_accounts_shard_queue():
    route = EngineRouter(16)
    assert route(WAKE_UP, [], {"account_id": 3}, {}) == {"queue": shard_queue(shard_of(3, 16))}
    assert route(CHECK_TRIGGERS, ["BTC"], {"shard": 11}, {}) == {"queue": "engine.11"}
    assert route(SEND_SIGN_IN_LINK, [1], {}, {}) is None  # not the engine's: the static routes decide


def test_an_engine_task_that_names_no_account_is_refused_at_the_sender():
    with pytest.raises(ValueError, match="account_id"):
        EngineRouter(16)(WAKE_UP, [], {}, {})


@pytest.mark.parametrize(
    "env, index, shard_set",
    [
        ({}, 0, set(range(16))),
        ({"ENGINE_PROCESSES": "2", "ENGINE_INDEX": "1"}, 1, set(range(1, 16, 2))),
        ({"ENGINE_PROCESSES": "4", "DYNO": "engine.2"}, 1, {1, 5, 9, 13}),  # dynos count from 1
        ({"ENGINE_SHARD_SET": "0-3", "ENGINE_PROCESSES": "4"}, 0, {0, 1, 2, 3}),
        ({"ENGINE_SHARDS": "4", "ENGINE_PROCESSES": "2"}, 0, {0, 2}),
        ({"DYNO": "web.3"}, 0, set(range(16))),
    ],
)
def test_an_engine_process_derives_its_shard_set(env, index, shard_set):
    config = Config.from_env({**BASE, **env})
    assert (config.ENGINE_INDEX, config.ENGINE_SHARD_SET) == (index, shard_set)


@pytest.mark.parametrize(
    "env",
    [
        {"ENGINE_PROCESSES": "2", "ENGINE_INDEX": "2"},
        {"ENGINE_PROCESSES": "32"},
        {"ENGINE_SHARD_SET": "12-20"},
        {"ENGINE_SHARDS": "0"},
    ],
)
def test_a_shard_setting_that_cannot_work_stops_the_process(env):
    with pytest.raises(ConfigError, match="ENGINE_"):
        Config.from_env({**BASE, **env})


def test_each_shard_has_its_own_sweep_on_its_own_queue():
    celery = Config.from_env({**BASE, "ENGINE_SHARDS": "4"}).CELERY
    sweeps = [entry for entry in celery["beat_schedule"].values() if entry["task"] == "engine.sweep_stuck_orders"]
    assert [entry["kwargs"]["shard"] for entry in sweeps] == [0, 1, 2, 3]
