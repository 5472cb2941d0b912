"""Minute candles from quotes: the mid price, rounded down, so the chart shows what fills use."""

from dataclasses import dataclass

MINUTE_US = 60_000_000
INTERVALS_S = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14_400, "1d": 86_400}


def mid(bid: int, ask: int) -> int:
    """The mid price rounded down (what `Quote.event` publishes as `mid`)."""
    return (bid + ask) // 2


def minute_of(time_us: int) -> int:
    """Unix seconds of the minute that contains `time_us`."""
    return time_us // MINUTE_US * 60


@dataclass
class Bar:
    open: int
    high: int
    low: int
    close: int
    ticks: int = 1

    @classmethod
    def at(cls, price: int) -> "Bar":
        return cls(price, price, price, price)

    def add(self, price: int) -> None:
        self.high, self.low, self.close = max(self.high, price), min(self.low, price), price
        self.ticks += 1

    def then(self, later: "Bar") -> "Bar":
        """This bar followed by `later` (both of the same minute)."""
        return Bar(
            self.open, max(self.high, later.high), min(self.low, later.low), later.close, self.ticks + later.ticks
        )
