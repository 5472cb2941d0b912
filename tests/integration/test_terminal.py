"""The web terminal in a real headless Chromium (Debian's, driven by Playwright), against the whole
stack: gunicorn (gevent), engine, mailer, the simulator feeding a poller, real SMTP.

The tests run in order on one page, as a person would use it; each step leaves a screenshot in
.data/test-artifacts/terminal/. `make screenshots` also writes docs/terminal.png and
docs/terminal-mobile.png.
"""

import base64
import os
import re
import shutil

import pytest

from tests.support.feed import LiveFeed
from tests.support.mail import link_from, wait_for_mail
from tests.support.processes import ROOT, WebServer
from tests.support.state import reset_state
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("engine_worker", "mail_worker")
ARTIFACTS = ROOT / ".data" / "test-artifacts" / "terminal"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EMAIL = "trader@example.com"
PERP = "BTC_USDC_PERP"
FUNDING_INTERVAL_S = 5


@pytest.fixture(scope="module")
def simulator():
    from poller.simulator import Simulator

    sim = Simulator(interval_s=0.1, funding_interval_s=FUNDING_INTERVAL_S).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def stack(app, simulator, engine_worker, mail_worker):
    """Web on a fixed port (restartable), the simulator's catalog, a live feed of the seed's
    markets and one perpetual (funding every few seconds), and an hour of backfilled candles."""
    from app.markets.service import register_chosen_perpetuals

    runner = app.test_cli_runner()
    app.config["BACKPACK_REST_URL"] = f"http://127.0.0.1:{simulator.port}"
    reset_state(app)  # once, for the whole scenario
    result = runner.invoke(args=["markets", "sync", "--rest-url", app.config["BACKPACK_REST_URL"]])
    assert result.exit_code == 0, result.output
    with app.app_context():
        register_chosen_perpetuals()
    markets = ("SOL_USDC", "BTC_USDC", "ETH_USDC", PERP)
    feed = LiveFeed(app, simulator, markets, marked=(PERP,), funding_intervals_ms={PERP: FUNDING_INTERVAL_S * 1000})
    feed.start()
    web = WebServer(workers=1).start()
    result = runner.invoke(args=["candles", "backfill", "--days", "1", "--pause", "0"])
    assert result.exit_code == 0 and "minutes loaded" in result.output, result.output
    yield web
    web.stop()
    feed.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "make test installs Debian's chromium (tests/ensure-chromium)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser, stack):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()


@pytest.fixture(autouse=True)
def clean_state():
    """The scenario runs on one account across these tests: nothing is truncated in between."""


def open_from_ticket(page, asset: str, margin: str, leverage: int) -> None:
    """Open a long from the ticket as a person would: asset tab, margin, leverage, then the button."""
    page.locator(f".asset-tab[data-asset='{asset}']").click()
    page.get_by_label("Margin (USD)").fill(margin)
    page.get_by_label("Leverage (number)").fill(str(leverage))
    page.get_by_label("Leverage (number)").press("Tab")
    page.get_by_role("button", name=re.compile("Open long")).click()
    page.get_by_text(re.compile(rf"Opened {asset} long {leverage}×")).wait_for()


def in_view(page, selector: str, panel: str) -> bool:
    """Whether the element is wholly visible: inside its scrolling panel and the window."""
    return page.evaluate(
        """([selector, panel]) => {
            const box = document.querySelector(selector).getBoundingClientRect();
            const frame = document.querySelector(panel).getBoundingClientRect();
            return box.top >= frame.top && box.bottom <= frame.bottom && box.bottom <= window.innerHeight;
        }""",
        [selector, panel],
    )


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_sign_in_through_the_mailed_link(page, stack, smtp):
    page.goto(stack.url + "/")
    page.get_by_label("E-mail").wait_for()
    shot(page, "01-sign-in")
    page.get_by_label("E-mail").fill(EMAIL)
    page.get_by_role("button", name="Email me a sign-in link").click()
    page.get_by_text("Check your mail").wait_for()
    shot(page, "02-check-your-mail")
    link = link_from(wait_for_mail(smtp, EMAIL))
    page.goto(re.sub(r"^https?://[^/]+", stack.url, link))  # the mail names PUBLIC_URL; this server is elsewhere
    assert page.url == stack.url + "/"
    page.locator("#connection.live").wait_for()
    eventually(lambda: page.locator("#free-usd").inner_text() == "5,000.00", timeout=20)
    page.locator(".asset-tab[data-asset='BTC'] .bid").filter(has_text=re.compile(r"\d")).wait_for()
    page.locator("#preview [data-field='quantity']").filter(has_text="BTC").wait_for()
    shot(page, "03-terminal")
    assert page.errors == []


def test_open_a_long_from_the_ticket_by_keyboard(page):
    page.get_by_role("tab", name=re.compile("SOL")).click()
    page.get_by_label("Margin (USD)").fill("250.00")
    page.get_by_label("Leverage (number)").fill("5")
    page.get_by_label("Leverage (number)").press("Tab")
    page.locator("#preview [data-field='notional']").filter(has_text="1,250.00 USD").wait_for()
    page.get_by_label("Margin (USD)").press("Enter")
    page.get_by_text(re.compile(r"Opened SOL long 5× at")).wait_for()
    row = page.locator("#positions-body tr").first
    row.wait_for()
    assert "SOL" in row.inner_text() and "long 5×" in row.inner_text().lower()
    eventually(lambda: page.locator("#locked-margin").inner_text() == "250.00", timeout=10)
    assert page.locator("#free-usd").inner_text() == "4,750.00"
    shot(page, "04-opened-long")


def test_unrealized_pnl_follows_the_price(page, simulator):
    cell = page.locator("#positions-body tr td[id^='pnl-']").first
    eventually(lambda: re.search(r"\d", cell.inner_text()), timeout=10)
    sol = simulator.markets["SOL_USDC"].mid
    simulator.set_quote("SOL_USDC", str(sol * 2), str(sol * 2))  # SOL doubles: a long's PnL is far above zero
    eventually(lambda: cell.inner_text().startswith("+") and "gain" in cell.get_attribute("class"), timeout=15)
    gain = cell.inner_text()
    eventually(lambda: page.locator("#equity").inner_text() not in ("–", "5,000.00"), timeout=10)
    shot(page, "05-pnl-moves")
    assert gain.startswith("+")


def test_close_the_position_and_find_it_in_history(page):
    page.get_by_role("button", name="Close SOL long").click()
    page.get_by_text(re.compile(r"Closed SOL long at")).wait_for()
    eventually(lambda: page.locator("#positions-body tr").count() == 0, timeout=10)
    page.get_by_role("tab", name="History").click()
    row = page.locator("#history-body tr").first
    row.wait_for()
    assert "Closed by you" in row.inner_text() and "SOL" in row.inner_text()
    shot(page, "06-history")
    page.get_by_role("tab", name=re.compile("Open positions")).click()


def test_insufficient_balance_is_explained(page):
    page.get_by_label("Margin (USD)").fill("999999.00")
    page.get_by_role("button", name=re.compile("Open long")).click()
    page.get_by_text("Not enough free USD for this margin.").wait_for()
    shot(page, "07-insufficient-balance")


def test_a_limit_order_works_beside_the_depth_ladder_and_cancels(page):
    page.get_by_role("tab", name=re.compile("BTC")).click()
    eventually(lambda: page.locator("#ladder-asks tr").count() == 8 and page.locator("#ladder-bids tr").count() == 8)
    page.get_by_role("button", name="Limit", exact=True).click()
    page.get_by_label("Limit price (USD)").fill("50000.0")
    page.get_by_label("Margin (USD)").fill("100.00")
    page.get_by_label("Leverage (number)").fill("10")
    page.get_by_label("Leverage (number)").press("Tab")
    # the preview is the limit's own: filled at 50,000 once the book gets there, its quantity from that price
    page.locator("#preview [data-field='price']").filter(has_text="50,000.0000 USD (works until the book").wait_for()
    page.locator("#preview [data-field='quantity']").filter(has_text="0.02000000 BTC").wait_for()
    page.get_by_role("button", name="Place long limit").click()
    page.get_by_text(re.compile(r"Placed BTC long limit at 50,000.0000 USD: working")).wait_for()
    assert in_view(page, "#ticket-message", ".ticket")  # below the fold of the panel on an 800 px window
    row = page.locator("#working-body tr").first
    row.wait_for()
    assert "limit" in row.inner_text() and "50,000.0000" in row.inner_text()
    shot(page, "08-working-limit-and-ladder")
    page.get_by_role("button", name="Cancel BTC long limit").click()
    page.get_by_text("Cancelled the BTC limit order; its margin is back.").wait_for()
    eventually(lambda: page.locator("#working-body tr").count() == 0)
    page.get_by_role("button", name="Market", exact=True).click()


def test_a_liquidation_is_announced(page, simulator):
    open_from_ticket(page, "ETH", "100.00", 100)
    page.locator("#positions-body tr").first.click()  # selected: its price lines are on the chart
    shot(page, "09-selected-position")
    eth = simulator.markets["ETH_USDC"].mid
    simulator.set_quote("ETH_USDC", str(eth / 2), str(eth / 2))
    notice = page.locator(".notice.alert").filter(has_text="Liquidated: ETH long 100×")
    notice.wait_for(timeout=30_000)
    shot(page, "10-liquidation-notice")
    eventually(lambda: page.locator("#positions-body tr").count() == 0, timeout=10)


def test_the_page_recovers_after_the_web_process_restarts(page, stack):
    stack.stop()
    page.locator("#connection.down").wait_for(timeout=20_000)
    shot(page, "11-web-down")
    stack.start()
    page.locator("#connection.live").wait_for(timeout=30_000)
    bid = page.locator(".asset-tab[data-asset='BTC'] .bid")
    before = bid.inner_text()
    eventually(lambda: bid.inner_text() != before, timeout=15)  # live prices flow again
    shot(page, "12-web-back")
    assert page.errors == []


def test_account_tab_equity_activity_csv_and_reset(app, page):
    from app.account.service import snapshot_round

    with app.app_context():
        snapshot_round()  # what beat does every minute: the curve has points to draw
    page.get_by_role("tab", name="Account").click()
    row = page.locator("#activities-body tr").first
    row.wait_for()
    activities = page.locator("#activities-body").inner_text()
    assert "Position closed" in activities and "Margin released" in activities  # the cancelled limit's margin
    with page.expect_download() as download:
        page.get_by_role("link", name="Activity CSV").click()
    lines = open(download.value.path()).read().splitlines()
    assert lines[0] == "id,time,type,usd,locked_margin,order_id" and lines[-1].split(",")[3] == "5000.00"
    page.get_by_role("button", name="Reset account…").click()
    page.get_by_role("alertdialog").wait_for()
    shot(page, "13-account-reset-confirm")
    page.get_by_role("button", name="Yes, reset").click()
    page.get_by_text(re.compile(r"Account reset: \d+ position\(s\) closed; free USD is 5,000.00")).wait_for()
    eventually(lambda: page.locator("#free-usd").inner_text() == "5,000.00", timeout=10)
    eventually(lambda: "Account reset" in page.locator("#activities-body").inner_text(), timeout=10)
    shot(page, "14-account-after-reset")
    page.get_by_role("tab", name=re.compile("Open positions")).click()
    assert page.errors == []


def test_pick_a_perpetual_by_typing_and_see_its_mark_and_funding(page):
    page.get_by_label("Find a market").fill("btc_usdc_p")
    page.get_by_label("Find a market").press("Enter")
    tab = page.locator(f".asset-tab[data-asset='{PERP}']")
    tab.wait_for()
    assert tab.get_attribute("aria-selected") == "true"
    assert page.locator("#chart-title").inner_text().startswith(PERP)
    page.locator("#perp-info").wait_for()
    eventually(lambda: re.fullmatch(r"[\d,]+\.\d", page.locator("#perp-mark").inner_text()), timeout=10)
    assert page.locator("#perp-funding").inner_text() == "+0.00125%"  # the simulator's rate, as a percentage
    assert re.fullmatch(r"00:00:0\d", page.locator("#perp-countdown").inner_text())
    shot(page, "15-perpetual-picked")

    open_from_ticket(page, PERP, "100.00", 10)
    row = page.locator("#positions-body tr").filter(has_text=PERP)
    eventually(lambda: re.search(r"\d", row.locator("td.mark").inner_text()), timeout=10)
    # funding every 5 s, settled by the engine's sweep: a long pays the positive rate, rounded against it
    eventually(lambda: row.locator("td.funding").inner_text().startswith("−"), timeout=40)
    shot(page, "16-perpetual-position")
    page.get_by_label("Find a market").fill("nothing-like-this")
    page.get_by_label("Find a market").press("Enter")
    page.get_by_text("No open perpetual matches").wait_for()
    page.get_by_label("Find a market").fill("")
    assert page.errors == []


def test_open_a_second_account_and_switch_between_accounts(page):
    main_usd = page.locator("#free-usd").inner_text()
    page.get_by_role("button", name="New account").click()
    page.get_by_label("Name", exact=True).fill("Scalping")
    page.get_by_label("Starting balance (USD)").fill("1,000.00")
    page.get_by_role("button", name="Open account").click()
    page.get_by_text("Opened Scalping with 1,000.00 USD").wait_for()
    eventually(lambda: page.locator("#free-usd").inner_text() == "1,000.00", timeout=10)
    eventually(lambda: page.locator("#positions-body tr").count() == 0, timeout=10)
    open_from_ticket(page, "BTC", "100.00", 10)
    eventually(lambda: page.locator("#free-usd").inner_text() == "900.00", timeout=10)
    eventually(lambda: page.locator("#positions-body tr").filter(has_text="BTC").count() == 1, timeout=10)
    shot(page, "17-second-account")

    page.reload()  # the account chosen last is the one the page comes back to
    eventually(lambda: page.locator("#account-select option:checked").inner_text() == "Scalping · hedging")
    eventually(lambda: page.locator("#free-usd").inner_text() == "900.00", timeout=10)
    page.get_by_label("Paper account").select_option(label="main · hedging")
    eventually(lambda: page.locator("#positions-body tr").filter(has_text=PERP).count() == 1, timeout=10)
    page.locator(f".asset-tab[data-asset='{PERP}']").wait_for()  # a tab for each perpetual held, after a reload too
    eventually(lambda: page.locator("#free-usd").inner_text() not in ("900.00", "–"), timeout=10)
    assert page.locator("#free-usd").inner_text() != "1,000.00" and main_usd != "900.00"
    page.get_by_role("button", name="New account").click()
    page.get_by_label("Name", exact=True).fill("main")
    page.get_by_role("button", name="Open account").click()
    page.get_by_text("You have an account with that name already.").wait_for()
    page.get_by_role("button", name="Cancel").click()
    assert page.errors == []


def test_a_netting_account_trades_a_perpetual_from_its_own_ticket(page):
    page.get_by_role("button", name="New account").click()
    page.get_by_label("Name", exact=True).fill("Perps")
    page.get_by_label("Starting balance (USD)").fill("10,000.00")
    page.get_by_label("Mode").select_option("netting")
    page.get_by_role("button", name="Open account").click()
    page.get_by_text("Opened Perps with 10,000.00 USD").wait_for()
    page.locator("#net-ticket").wait_for()
    assert page.locator("#ticket").is_hidden()
    page.locator(f".asset-tab[data-asset='{PERP}']").click()
    page.get_by_label("Quantity (BTC)").fill("0.01")
    page.locator("#net-submit").click()
    page.get_by_text(re.compile(r"Filled: 0\.01000 of 0\.01000 BTC in \d+ fills?\.")).wait_for()
    row = page.locator("#net-positions-body tr").filter(has_text=PERP)
    eventually(lambda: row.count() == 1 and "+0.01000" in row.inner_text(), timeout=10)
    # the header values the position at its mark, as the row does (the stream's PnL events)
    eventually(lambda: page.locator("#unrealized-pnl").inner_text() == row.locator("td").last.inner_text(), timeout=10)

    page.locator(".net-side[data-side='sell']").click()
    page.locator(".net-type[data-type='limit']").click()
    page.get_by_label("Price (USD)", exact=True).fill("200000.0")
    page.get_by_label("Post only").check()
    page.locator("#net-submit").click()
    page.get_by_text("Working: 0.00000 of 0.01000 BTC.").wait_for()
    working = page.locator("#net-orders-body tr").filter(has_text="200,000.0")
    working.wait_for()
    shot(page, "18-netting-account")
    working.get_by_role("button", name=re.compile("Cancel")).click()
    eventually(lambda: page.locator("#net-orders-body tr").count() == 0, timeout=10)

    page.locator(".net-type[data-type='market']").click()
    page.locator(".net-side[data-side='buy']").click()
    page.get_by_label("Reduce only").check()
    page.locator("#net-submit").click()  # a buy cannot reduce a long
    page.get_by_text(re.compile("reduceOnly: the order would not reduce the position")).wait_for()

    page.get_by_role("tab", name="Account").click()
    page.get_by_label("Label").fill("grid bot")
    page.get_by_role("button", name="New API key").click()
    page.get_by_text("Copy the secret now: it is shown this once.").wait_for()
    seed, public = page.locator("#api-key-seed").inner_text(), page.locator("#api-key-public").inner_text()
    assert len(base64.b64decode(seed)) == 32 and len(base64.b64decode(public)) == 32
    keys = page.locator("#api-keys-body tr")
    eventually(lambda: keys.count() == 1 and public in keys.first.inner_text(), timeout=10)
    assert page.locator("#backpack-url").inner_text().endswith("/backpack")
    page.locator("#api-key-secret").scroll_into_view_if_needed()
    shot(page, "19-api-keys")
    keys.first.get_by_role("button", name="Revoke grid bot").click()
    eventually(lambda: keys.count() == 0, timeout=10)
    page.get_by_role("tab", name=re.compile("Open positions")).click()
    page.get_by_label("Paper account").select_option(label="main · hedging")
    page.locator("#ticket").wait_for()
    assert page.errors == []


def test_phone_screen_and_docs_screenshots(browser, page, stack):
    """390x844: one column, nothing wider than the screen. `make screenshots` keeps these in docs/."""
    docs = ROOT / "docs" if os.environ.get("WRITE_DOCS_SCREENSHOTS") else ARTIFACTS
    open_from_ticket(page, "BTC", "100.00", 10)
    page.locator("#positions-body tr").filter(has_text=PERP).click()  # the perpetual on the chart, its mark line
    page.wait_for_timeout(1500)
    page.screenshot(path=str(docs / "terminal.png"))

    phone = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        storage_state=page.context.storage_state(),
    )
    mobile = phone.new_page()
    mobile.goto(stack.url + "/")
    mobile.locator("#connection.live").wait_for(timeout=20_000)
    mobile.locator("#positions-body tr").first.wait_for()
    mobile.wait_for_timeout(1500)
    assert mobile.evaluate("document.documentElement.scrollWidth") <= 390
    for control in ("Margin (USD)", "Leverage (number)", "Max slippage (%)"):
        assert mobile.get_by_label(control).is_visible()
    mobile.screenshot(path=str(docs / "terminal-mobile.png"))
    phone.close()


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("Money.format(123456789, 4)", "12,345.6789"),
        ("Money.format(-5, 2)", "−0.05"),
        ("Money.format(7, 2, { signed: true })", "+0.07"),
        ("Money.format(900719925474099, 8)", "9,007,199.25474099"),
        ("Money.format(null, 2)", "–"),
        ("Money.parse('1,234.5', 2)", 123450),
        ("Money.parse('0.1', 6)", 100000),
        ("Money.parse('0.123', 2)", None),  # more decimals than the unit has: refused, not rounded
        ("Money.parse('1e3', 2)", None),
        ("Money.parse('', 2)", None),
        ("Money.percentToBps('1.25')", 125),
        ("Money.percent('0.0000125')", "+0.00125%"),
        ("Money.percent('-0.0003')", "−0.03%"),
    ],
)
def test_money_is_formatted_and_parsed_from_integer_units_without_floats(page, expression, expected):
    assert page.evaluate(expression) == expected
