"""Backpack's catalog read strictly: decimals from tick and step, filters, what MARKETS chooses."""

import contextlib
import copy
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.markets import BookState, CatalogError, MarketType, choose, parse_market, scale
from poller.simulated_markets import LISTINGS, market_json

CATALOG = [parse_market(market_json(listing)) for listing in LISTINGS]
BY_SYMBOL = {market.symbol: market for market in CATALOG}


@pytest.mark.parametrize(
    "step, places", [("0.01", 2), ("0.1", 1), ("1", 0), ("0.000001", 6), ("0.10", 2), ("10", 0), ("0.00001", 5)]
)
def test_decimals_are_the_scale_of_the_step_as_written(step, places):
    assert scale(Decimal(step)) == places


def test_the_simulated_catalog_reads_whole_with_backpacks_fields():
    assert len(CATALOG) >= 20
    btc = BY_SYMBOL["BTC_USDC_PERP"]
    assert (btc.market_type, btc.book_state) == (MarketType.PERP, BookState.OPEN)
    assert (btc.price_decimals, btc.quantity_decimals) == (1, 5)
    assert btc.funding_interval_ms == 3_600_000 and btc.max_price == Decimal("1000000")
    sol = BY_SYMBOL["SOL_USDC_PERP"]
    assert (sol.imf.base, sol.imf.factor, sol.mmf.base, sol.mmf.factor) == tuple(
        Decimal(v) for v in ("0.02", "0.0001275", "0.0125", "0.0000765")
    )
    spot = BY_SYMBOL["SOL_USDC"]
    assert spot.imf is None and spot.funding_interval_ms is None and spot.market_type == MarketType.SPOT
    assert BY_SYMBOL["kPEPE_USDC_PERP"].price_decimals == 6 and BY_SYMBOL["AAPL.US_USDC_PERP"].base_symbol == "AAPL.US"


@pytest.mark.parametrize(
    "symbol, price, quantity, on_tick, on_step",
    [
        ("BTC_USDC_PERP", "118320.1", "0.00001", True, True),
        ("BTC_USDC_PERP", "118320.15", "0.000015", False, False),
        ("kPEPE_USDC_PERP", "0.011234", "3", True, True),
        ("kPEPE_USDC_PERP", "0.0112345", "2.5", False, False),
        ("SOL_USDC", "0", "0", False, False),
    ],
)
def test_prices_sit_on_the_tick_and_quantities_on_the_step(symbol, price, quantity, on_tick, on_step):
    market = BY_SYMBOL[symbol]
    assert market.on_tick(Decimal(price)) is on_tick and market.on_step(Decimal(quantity)) is on_step


def test_markets_chooses_open_usdc_perps_and_the_seed_spot_markets():
    perps = [m.symbol for m in CATALOG if m.market_type == MarketType.PERP and m.book_state == BookState.OPEN]
    default = choose(CATALOG, "default")
    assert default[:3] == ["SOL_USDC", "BTC_USDC", "ETH_USDC"] and sorted(default[3:]) == sorted(perps)
    assert "MATIC_USDC_PERP" not in default and "ZORA_USDC_PERP" not in default  # closed, post-only
    assert choose(CATALOG, "") == default and sorted(choose(CATALOG, "perp")) == sorted(perps)
    assert choose(CATALOG, " SOL_USDC, BTC_USDC_PERP,SOL_USDC ") == ["SOL_USDC", "BTC_USDC_PERP"]
    with pytest.raises(CatalogError, match="DOGE_USDC"):
        choose(CATALOG, "SOL_USDC,DOGE_USDC")


def broken(change) -> dict:
    raw = copy.deepcopy(market_json(LISTINGS[7]))
    change(raw)
    return raw


@pytest.mark.parametrize(
    "change",
    [
        lambda raw: raw.pop("filters"),
        lambda raw: raw["filters"]["price"].update(tickSize="abc"),
        lambda raw: raw["filters"]["price"].update(tickSize="0"),
        lambda raw: raw["filters"]["price"].update(tickSize=0.1),
        lambda raw: raw["filters"]["quantity"].update(stepSize="-0.001"),
        lambda raw: raw["filters"]["quantity"].update(minQuantity="NaN"),
        lambda raw: raw.update(marketType="FUTURE"),
        lambda raw: raw.update(orderBookState="Halted"),
        lambda raw: raw.update(fundingInterval="3600000"),
        lambda raw: raw.update(fundingInterval=True),
        lambda raw: raw.update(imfFunction={"type": "linear", "base": "0.02", "factor": "1"}),
        lambda raw: raw.update(baseSymbol=None),
    ],
)
def test_a_malformed_market_is_refused_with_its_symbol(change):
    with pytest.raises(CatalogError, match="BTC_USDC_PERP"):
        parse_market(broken(change))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.sampled_from(list(market_json(LISTINGS[0]))), json_values) | json_values)
def test_anything_else_is_a_catalog_error_never_a_crash(raw):
    with contextlib.suppress(CatalogError):
        parse_market(raw)
