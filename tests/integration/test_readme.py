"""The README's "first five minutes", run as written against a live gunicorn server."""

import json
import re
import subprocess

import pytest

from tests.support.mail import link_from, wait_for_mail
from tests.support.processes import ROOT

pytestmark = pytest.mark.usefixtures("engine_worker", "mail_worker")
README_API = "http://localhost:8000"


def walkthrough_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## First five minutes", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def run(script: str, url: str) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script.replace(README_API, url)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_first_five_minutes_commands_work_as_written(perpetuals, live_server, set_price, smtp):  # catalog first
    signup, trade, accounts, netting = walkthrough_blocks()
    set_price("BTC", 1_183_183_000, 1_183_184_000)
    quote, mark = perpetuals
    quote(1_183_200, 1_183_202)
    mark(1_183_201)
    assert "sign-in link" in run(signup, live_server)
    link = link_from(wait_for_mail(smtp, "you@example.com"))
    trade = re.sub(r"^LINK=.*$", f"LINK='{link}'", trade, count=1, flags=re.M)
    shell_state = re.search(r"^API=.*$", signup, re.M).group(0)  # the same terminal session
    trade = f"{shell_state}\n{trade}\n{accounts}\n{netting}"  # the same session: the accounts need $AUTH
    output = run(trade, live_server).strip().splitlines()
    prices, opened, closed, balances, shorted, listed, bought, held = (json.loads(line) for line in output)
    assert prices["BTC"]["ask"] == 1_183_184_000
    assert opened["status"] == "open" and opened["openPrice"] == 1_183_184_000
    assert closed["status"] == "closed" and closed["orderId"] == opened["orderId"]
    assert balances["USD"]["balance"] == 500_000 + closed["pnl"]
    assert shorted["status"] == "open" and shorted["type"] == "short"
    main, second = listed
    assert (main["name"], main["usd"]) == ("main", balances["USD"]["balance"])
    assert (second["name"], second["usd"], second["lockedMargin"]) == ("scalping", 95_000 - shorted["fees"], 5_000)
    assert (bought["status"], bought["executedQuantity"], bought["fills"][0]["price"]) == ("filled", 100, 1_183_202)
    assert [(p["symbol"], p["netQuantity"], p["markPrice"]) for p in held] == [("BTC_USDC_PERP", 100, 1_183_201)]


def test_the_backpack_bot_snippet_runs_as_written(perpetuals, live_server, client, make_user):
    """The README's ccxt snippet, with a paper key of a netting account pasted in."""
    import contextlib
    import io

    quote, mark = perpetuals
    quote(1_183_200, 1_183_202)
    mark(1_183_201)
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use your Backpack bot on paper", 1)[1].split("\n## ", 1)[0]
    (snippet,) = re.findall(r"```python\n(.*?)```", section, re.S)
    _, headers = make_user()
    account = client.post("/api/v1/accounts", json={"name": "bot", "mode": "netting"}, headers=headers).json
    key = client.post("/api/v1/api-keys", json={"accountId": account["id"], "label": "bot"}, headers=headers).json
    snippet = snippet.replace("YOUR-PAPER-PUBLIC-KEY", key["publicKey"]).replace("YOUR-PAPER-SEED", key["seed"])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(snippet.replace(README_API, live_server), "README.md", "exec"), {})
    assert printed.getvalue().splitlines() == ["5000.0", "closed 0.001"]
