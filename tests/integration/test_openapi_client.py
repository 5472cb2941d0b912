"""A client generated from the OpenAPI document (openapi-python-client) signs in, trades and
closes against the web process: the document is what the service does."""

import importlib
import subprocess
import sys

import pytest

from tests.support.mail import token_from, wait_for_mail
from tests.support.trading import BTC_ASK, BTC_BID

pytestmark = pytest.mark.usefixtures("engine_worker", "mail_worker")


@pytest.fixture
def generated(tmp_path, live_server):
    import requests

    document = tmp_path / "openapi.json"
    document.write_text(requests.get(f"{live_server}/openapi.json", timeout=10).text)
    generator = [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(document)]
    output = ["--output-path", str(tmp_path / "paper_client"), "--meta", "none"]
    subprocess.run([*generator, *output], check=True, capture_output=True, cwd=tmp_path)
    sys.path.insert(0, str(tmp_path))
    yield lambda module: importlib.import_module(f"paper_client.{module}")
    sys.path.remove(str(tmp_path))
    for name in [name for name in sys.modules if name.startswith("paper_client")]:
        del sys.modules[name]


def test_a_generated_client_signs_in_trades_and_closes(generated, live_server, smtp, set_price):
    client, models = generated("client"), generated("models")
    signup, signin = generated("api.auth.post_signup"), generated("api.auth.get_signin_post")
    create, close = generated("api.trading.post_trade_create"), generated("api.trading.post_trade_close")
    usd = generated("api.balances.get_balance_usd")
    set_price("BTC", BTC_BID, BTC_ASK)

    anonymous = client.Client(base_url=live_server)
    signup.sync(client=anonymous, body=models.Email(email="generated@example.com"))
    session = signin.sync(client=anonymous, token=token_from(wait_for_mail(smtp, "generated@example.com", 30)))
    signed_in = client.AuthenticatedClient(base_url=live_server, token=session.token)

    trade = models.CreateTrade(asset="BTC", type_=models.CreateTradeType.LONG, margin=100_000, leverage=10)
    opened = create.sync(client=signed_in, body=trade)
    assert isinstance(opened, models.Order) and opened.status.value == "open" and opened.open_price == BTC_ASK
    closed = close.sync(client=signed_in, body=models.CloseTrade(order_id=opened.order_id))
    assert isinstance(closed, models.Order) and closed.status.value == "closed"
    assert usd.sync(client=signed_in).balance == 500_000 + closed.pnl
