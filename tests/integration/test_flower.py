"""Flower as the Procfile starts it: never without credentials, tasks shown by name with
arguments that hold no address and no link."""

import os
import subprocess
import time

import pytest
import requests

from devstack import free_port, read_procfile, wait_for_http
from tests.support.processes import ROOT, log_file
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("engine_worker", "mail_worker")
CREDENTIALS = ("operator", "flower-test-password")


def start_flower(**env) -> subprocess.Popen:
    return subprocess.Popen(
        ["bash", "-c", f"exec {read_procfile()['flower']}"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log_file("flower"),
        stderr=subprocess.STDOUT,
    )


def test_flower_refuses_to_start_without_credentials():
    env = {key: value for key, value in os.environ.items() if key != "FLOWER_BASIC_AUTH"}
    result = subprocess.run(
        ["bash", "-c", read_procfile()["flower"]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0 and "FLOWER_BASIC_AUTH" in result.stderr


@pytest.fixture
def flower():
    port = free_port()
    process = start_flower(FLOWER_PORT=str(port), HOST="127.0.0.1", FLOWER_BASIC_AUTH=":".join(CREDENTIALS))
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url)
    time.sleep(1)  # let it subscribe to task events
    yield url
    process.terminate()
    process.wait(10)


def test_flower_needs_basic_auth_and_shows_tasks_without_personal_data(flower, client, make_user, set_price):
    assert requests.get(flower, timeout=5).status_code == 401
    account_id, headers = make_user()
    set_price("BTC", 1_000_000_000, 1_000_100_000)
    client.post(
        "/api/v1/trade/create", headers=headers, json={"asset": "BTC", "type": "long", "margin": 1_000, "leverage": 1}
    )
    client.post("/api/v1/signup", json={"email": "flower@example.com"})

    def listed_tasks():
        listed = requests.get(f"{flower}/api/tasks", auth=CREDENTIALS, timeout=5).json()
        tasks = {task["name"]: task for task in listed.values()}
        return tasks if {"engine.wake_up", "mail.send_sign_in_link"} <= set(tasks) else None

    tasks = eventually(listed_tasks, timeout=20, interval=0.5)
    assert tasks["engine.wake_up"]["kwargs"] == repr({"account_id": account_id})  # the account id, nothing else
    for task in tasks.values():
        shown = f"{task['args']} {task['kwargs']} {task.get('result')}"
        assert "@" not in shown and "token=" not in shown, task
