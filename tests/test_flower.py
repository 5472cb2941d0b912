"""Flower, as `make run` starts it: behind basic auth, showing tasks by name with harmless arguments."""
import os
import subprocess
import sys
import time

import pytest
import requests

from devstack import free_port, wait_for_http
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("engine_worker", "mail_worker")
CREDENTIALS = ("operator", "flower-test-password")


@pytest.fixture
def flower():
    port = free_port()
    env = {**os.environ, "FLOWER_PORT": str(port), "FLOWER_BASIC_AUTH": ":".join(CREDENTIALS)}
    log = open(ROOT / ".data" / "test-flower.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "celery", "-A", "celery_app", "flower", "--address=127.0.0.1"],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url)
    time.sleep(1)  # let it subscribe to task events
    yield url
    process.terminate()
    process.wait(10)


def test_flower_needs_basic_auth_and_shows_tasks_without_secrets(flower, client, make_user, set_price):
    assert requests.get(flower, timeout=5).status_code == 401
    _, headers = make_user()
    set_price("BTC", 1_000_000_000, 1_000_100_000)
    order_id = client.post("/api/v1/trade/create", headers=headers,
                           json={"asset": "BTC", "type": "long", "margin": 1_000, "leverage": 1}).json["orderId"]
    client.post("/api/v1/signup", json={"email": "flower@example.com"})

    tasks = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and {"engine.execute_order", "mail.send_sign_in_link"} - set(tasks):
        listed = requests.get(f"{flower}/api/tasks", auth=CREDENTIALS, timeout=5).json()
        tasks = {task["name"]: task for task in listed.values()}
        time.sleep(0.5)
    assert tasks["engine.execute_order"]["args"] == repr((order_id,))  # the order id, nothing else
    mail_args = tasks["mail.send_sign_in_link"]["args"]
    assert "flower@example.com" in mail_args and "token=" not in mail_args
