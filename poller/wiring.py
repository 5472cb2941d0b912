"""The poller as `python -m poller` wires it (and the tests' live feed): quotes, books and marks
into Redis, minute candles recorded, and a trigger check sent by name for the shards whose
trigger levels a price or a perpetual's mark crosses (`core.triggers`): a move that crosses
nothing costs nothing more."""

from typing import Any

from core.assets import ASSET_BY_MARKET
from core.marks import Mark
from core.prices import PriceStore, Quote
from core.tasks import TaskSender, request_trigger_check
from core.triggers import TriggerLevels
from poller.candles import CandleRecorder
from poller.feed import Poller


def check_crossings(client: Any, sender: TaskSender, quotes: list[Quote]) -> int:
    """After writing `quotes`: a trigger check for each shard whose levels one crosses (none
    pending), every market's levels read in one round trip."""
    crossed = TriggerLevels(client).crossed_shards_many([(quote.asset, quote.bid, quote.ask) for quote in quotes])
    return sum(request_trigger_check(client, sender, asset, shards) for asset, shards in crossed.items())


def check_mark_crossings(client: Any, sender: TaskSender, mark: Mark) -> int:
    """After writing a perpetual's mark: its positions' liquidation, stop-loss and take-profit
    trigger on the mark, so a mark crossing a level asks for a check as a quote does."""
    asset = ASSET_BY_MARKET.get(mark.market)
    if asset is None:
        return 0
    units = mark.units(asset.decimals)
    shards = TriggerLevels(client).crossed_shards(asset.symbol, units, units)
    return request_trigger_check(client, sender, asset.symbol, shards)


def wired_poller(
    ws_url: str,
    markets: list[str],
    client: Any,
    sender: TaskSender,
    candles: CandleRecorder,
    rest_url: str,
    silence_s: float,
    marked: list[str] | tuple[str, ...] = (),
    funding_intervals_ms: dict[str, int] | None = None,
) -> Poller:
    prices = PriceStore(client)

    def on_quotes(quotes: list[Quote]) -> None:
        for quote in quotes:
            candles.add(quote)
        check_crossings(client, sender, quotes)

    def on_books(assets: list[str]) -> None:
        """Working limits are filled by the book, not only its top: a book change is checked too."""
        check_crossings(client, sender, prices.read_many(assets))

    return Poller(
        ws_url,
        markets,
        client,
        on_quotes=on_quotes,
        silence_s=silence_s,
        rest_url=rest_url,
        on_books=on_books,
        marked=marked,
        on_mark=lambda mark: check_mark_crossings(client, sender, mark),
        funding_intervals_ms=funding_intervals_ms,
    )
