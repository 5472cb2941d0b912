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


def check_crossings(client: Any, sender: TaskSender, quote: Quote) -> int:
    """After writing `quote`: a trigger check for each shard whose levels it crosses (none pending)."""
    shards = TriggerLevels(client).crossed_shards(quote.asset, quote.bid, quote.ask)
    return request_trigger_check(client, sender, quote.asset, shards)


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
    def on_quote(quote: Quote) -> None:
        candles.add(quote)
        check_crossings(client, sender, quote)

    def on_book(asset: str) -> None:
        """Working limits are filled by the book, not only its top: a book change is checked too."""
        quote = PriceStore(client).read(asset)
        if quote is not None:
            check_crossings(client, sender, quote)

    return Poller(
        ws_url,
        markets,
        client,
        on_quote=on_quote,
        silence_s=silence_s,
        rest_url=rest_url,
        on_book=on_book,
        marked=marked,
        on_mark=lambda mark: check_mark_crossings(client, sender, mark),
        funding_intervals_ms=funding_intervals_ms,
    )
