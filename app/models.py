"""Database tables. Money and prices are BIGINT integers in fixed decimals, never floats.

States and kinds are the `StrEnum`s of `core.enums`; their CHECK constraints are built from them.
"""

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Numeric,
    String,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from core.enums import (
    AccountMode,
    CloseReason,
    FillModel,
    LedgerKind,
    NetOrderStatus,
    NetOrderType,
    NetRejectReason,
    OrderStatus,
    OrderType,
    RejectReason,
    ResetStatus,
    Side,
    TimeInForce,
    TradeSide,
    TriggerBy,
)
from core.markets import BookState, MarketType


def utcnow() -> datetime:
    return datetime.now(UTC)


Timestamp = Annotated[datetime, mapped_column(DateTime(timezone=True))]


def one_of(column: str, enum: type[StrEnum], name: str) -> CheckConstraint:
    """`column IN (...)` over the enum's values (NULL passes, as SQL CHECKs do)."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    return CheckConstraint(f"{column} IN ({values})", name=name)


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class LoginToken(db.Model):
    """A magic-link token. Only its SHA-256 is stored; the link carries the secret."""

    __tablename__ = "login_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[Timestamp]
    used_at: Mapped[Timestamp | None]
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class AccessToken(db.Model):
    """A personal access token for scripts: only its SHA-256 is stored, the secret is shown once.
    It acts for the account it was made for until revoked."""

    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # the secret's start, to tell tokens apart in a list
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    last_used_at: Mapped[Timestamp | None]
    revoked_at: Mapped[Timestamp | None]


class ApiKey(db.Model):
    """A Backpack paper-mode key of a netting account: only the ED25519 public key is stored (the
    seed of a pair the service generated is shown once, never kept). Revoked keys stay, so a
    public key is never registered twice."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[str] = mapped_column(String(44), unique=True)  # base64 of 32 bytes
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    last_used_at: Mapped[Timestamp | None]
    revoked_at: Mapped[Timestamp | None]


class Account(db.Model):
    """A paper account of a user: its own balance, ledger, positions, orders, equity history,
    reset and engine shard. Sign-up creates the first, `main`, which is never archived; an
    archived account keeps its history and takes no new orders."""

    __tablename__ = "accounts"
    __table_args__ = (
        one_of("mode", AccountMode, "mode_known"),
        Index("ix_accounts_user_name", "user_id", "name", unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    mode: Mapped[AccountMode] = mapped_column(String(8))
    starting_balance: Mapped[int] = mapped_column(BigInteger)  # USD cents: the deposit, and what a reset restores
    leverage_limit: Mapped[int]
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    archived_at: Mapped[Timestamp | None]


class Balance(db.Model):
    """An account's USD: `usd` is free balance, `locked_margin` backs open positions.

    Both always equal the sums of the account's ledger entries; the engine locks this row
    (SELECT ... FOR UPDATE) for every change, which serializes an account's trades.
    """

    __tablename__ = "balances"
    __table_args__ = (
        CheckConstraint("usd >= 0 OR cross_margin", name="usd_not_negative"),
        CheckConstraint("locked_margin >= 0", name="locked_margin_not_negative"),
    )

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    usd: Mapped[int] = mapped_column(BigInteger, default=0)
    locked_margin: Mapped[int] = mapped_column(BigInteger, default=0)
    # a netting account's cash may go below zero while its open positions' profit covers it
    cross_margin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class LedgerEntry(db.Model):
    """Append-only record of every balance change, written in the same transaction."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        one_of("kind", LedgerKind, "kind_known"),
        Index("ix_ledger_entries_account_id_id", "account_id", "id"),  # an account's history, newest first
        Index("ix_ledger_entries_created_at", "created_at"),  # accounts active since the last snapshot
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="RESTRICT"))
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id"), index=True)
    net_order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("net_orders.id"), index=True)
    kind: Mapped[LedgerKind] = mapped_column(String(32))
    usd_delta: Mapped[int] = mapped_column(BigInteger)
    locked_delta: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class Order(db.Model):
    """A CFD position, from `pending` (accepted), maybe `working` (a limit or stop), to one terminal
    state: `closed`, `cancelled` or `rejected`."""

    __tablename__ = "orders"
    __table_args__ = (
        one_of("status", OrderStatus, "status_known"),
        one_of("side", Side, "side_known"),
        one_of("order_type", OrderType, "order_type_known"),
        one_of("close_reason", CloseReason, "close_reason_known"),
        one_of("reject_reason", RejectReason, "reject_reason_known"),
        one_of("fill_model", FillModel, "fill_model_known"),
        Index("ix_orders_working", "asset", "side", "order_type", postgresql_where=text("status = 'working'")),
        Index("ix_orders_account_created", "account_id", "created_at"),
        Index("ix_orders_pending", "created_at", postgresql_where=text("status = 'pending'")),
        Index(
            "ix_orders_open_liquidation", "asset", "side", "liquidation_price", postgresql_where=text("status = 'open'")
        ),
        Index(
            "ix_orders_open_stop_loss",
            "asset",
            "side",
            "stop_loss",
            postgresql_where=text("status = 'open' AND stop_loss IS NOT NULL"),
        ),
        Index(
            "ix_orders_open_take_profit",
            "asset",
            "side",
            "take_profit",
            postgresql_where=text("status = 'open' AND take_profit IS NOT NULL"),
        ),
        Index("ix_orders_closed", "asset", "closed_at", postgresql_where=text("status = 'closed'")),  # funding catch-up
        Index(
            "ix_orders_close_requested",
            "close_requested_at",
            postgresql_where=text("status = 'open' AND close_requested_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    asset: Mapped[str] = mapped_column(String(64))
    side: Mapped[Side] = mapped_column(String(5))
    order_type: Mapped[OrderType] = mapped_column(String(8), default=OrderType.MARKET)
    status: Mapped[OrderStatus] = mapped_column(String(9), default=OrderStatus.PENDING)
    margin: Mapped[int] = mapped_column(BigInteger)
    leverage: Mapped[int]
    slippage_bps: Mapped[int]
    requested_price: Mapped[int | None] = mapped_column(BigInteger)
    stop_loss: Mapped[int | None] = mapped_column(BigInteger)
    take_profit: Mapped[int | None] = mapped_column(BigInteger)
    quantity: Mapped[int | None] = mapped_column(BigInteger)
    open_price: Mapped[int | None] = mapped_column(BigInteger)
    liquidation_price: Mapped[int | None] = mapped_column(BigInteger)
    close_price: Mapped[int | None] = mapped_column(BigInteger)
    pnl: Mapped[int | None] = mapped_column(BigInteger)
    close_reason: Mapped[CloseReason | None] = mapped_column(String(16))
    reject_reason: Mapped[RejectReason | None] = mapped_column(String(32))
    close_requested_at: Mapped[Timestamp | None]
    limit_price: Mapped[int | None] = mapped_column(BigInteger)
    stop_price: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[Timestamp | None]
    fill_model: Mapped[FillModel | None] = mapped_column(String(16))
    fills: Mapped[list | None] = mapped_column(JSONB)  # [{"price", "quantity"}] of the open
    open_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    close_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    opened_at: Mapped[Timestamp | None]
    closed_at: Mapped[Timestamp | None]


class NetOrder(db.Model):
    """An order of a netting account (Backpack's model): `pending` until the engine executes it,
    then filled, working (`new`, `partially_filled`) or ended. Quantities in QUANTITY_DECIMALS,
    prices in the market's price decimals, USD in cents."""

    __tablename__ = "net_orders"
    __table_args__ = (
        one_of("side", TradeSide, "net_side_known"),
        one_of("order_type", NetOrderType, "net_order_type_known"),
        one_of("status", NetOrderStatus, "net_status_known"),
        one_of("time_in_force", TimeInForce, "time_in_force_known"),
        one_of("reject_reason", NetRejectReason, "net_reject_reason_known"),
        one_of("trigger_by", TriggerBy, "trigger_by_known"),
        Index("ix_net_orders_account_created", "account_id", "created_at"),
        Index("ix_net_orders_pending", "created_at", postgresql_where=text("status = 'pending'")),
        Index(
            "ix_net_orders_working",
            "symbol",
            "side",
            "price",
            postgresql_where=text("status IN ('new', 'partially_filled')"),
        ),
        Index(
            "ix_net_orders_trigger_pending",
            "symbol",
            "trigger_price",
            postgresql_where=text("status = 'trigger_pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    number: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)  # Backpack's numeric order id
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[TradeSide] = mapped_column(String(4))
    order_type: Mapped[NetOrderType] = mapped_column(String(8))
    status: Mapped[NetOrderStatus] = mapped_column(String(16), default=NetOrderStatus.PENDING)
    quantity: Mapped[int | None] = mapped_column(BigInteger)  # None until a quoteQuantity order executes
    quote_quantity: Mapped[int | None] = mapped_column(BigInteger)
    price: Mapped[int | None] = mapped_column(BigInteger)
    time_in_force: Mapped[TimeInForce] = mapped_column(String(3), default=TimeInForce.GTC)
    post_only: Mapped[bool] = mapped_column(Boolean, default=False)
    reduce_only: Mapped[bool] = mapped_column(Boolean, default=False)
    client_id: Mapped[int | None] = mapped_column(BigInteger)
    executed_quantity: Mapped[int] = mapped_column(BigInteger, default=0)
    executed_quote: Mapped[int] = mapped_column(BigInteger, default=0)  # cents: Σ fills' notional
    fee: Mapped[int] = mapped_column(BigInteger, default=0)
    liquidation: Mapped[bool] = mapped_column(Boolean, default=False)  # a close of the account's liquidation
    reject_reason: Mapped[NetRejectReason | None] = mapped_column(String(32))
    book_update: Mapped[int | None] = mapped_column(BigInteger)  # the book a working order last filled on
    trigger_price: Mapped[int | None] = mapped_column(BigInteger)
    trigger_by: Mapped[TriggerBy | None] = mapped_column(String(8))
    trigger_above: Mapped[bool | None] = mapped_column(Boolean)  # fires as the price rises to it (else falls)
    triggered_at: Mapped[Timestamp | None]
    take_profit: Mapped[int | None] = mapped_column(BigInteger)  # attached: trigger prices of reduce-only closes
    stop_loss: Mapped[int | None] = mapped_column(BigInteger)
    related_order_id: Mapped[uuid.UUID | None] = mapped_column(index=True)  # an attached close's parent
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    ended_at: Mapped[Timestamp | None]


class Fill(db.Model):
    """One fill of a netting order: a level of the book taken, its fee and the PnL it realized."""

    __tablename__ = "fills"
    __table_args__ = (
        one_of("side", TradeSide, "fill_side_known"),
        Index("ix_fills_account_id", "account_id", "id"),
        Index("ix_fills_position_created", "account_id", "symbol", "created_at"),  # a position at a past time
        Index("ix_fills_symbol_created", "symbol", "created_at"),  # Backpack mode's public trades, tickers, klines
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("net_orders.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[TradeSide] = mapped_column(String(4))
    price: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int] = mapped_column(BigInteger)
    realized_pnl: Mapped[int] = mapped_column(BigInteger)
    maker: Mapped[bool] = mapped_column(Boolean)
    liquidation: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class Position(db.Model):
    """A netting account's position on one market: signed quantity (long > 0) and the exact cost
    of what is open (`core.cross_margin.Position`). Kept when flat (quantity 0), never deleted."""

    __tablename__ = "positions"
    __table_args__ = (
        Index(
            "ix_positions_open_liquidation",
            "symbol",
            "liquidation_price",
            postgresql_where=text("quantity <> 0"),
        ),
    )

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[Decimal] = mapped_column(Numeric(40, 0), default=0)  # price × quantity units: beyond BIGINT
    realized_pnl: Mapped[int] = mapped_column(BigInteger, default=0)  # since it last opened from flat
    liquidation_price: Mapped[int | None] = mapped_column(BigInteger)  # estimated at its last change
    opened_at: Mapped[Timestamp | None]
    updated_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class NetFundingPayment(db.Model):
    """A netting position's funding at one boundary: its primary key makes it exactly once. The
    quantity is the position's at the boundary (its fills since then taken back out), written
    with its ledger entry (`amount`) in one transaction."""

    __tablename__ = "net_funding_payments"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    boundary: Mapped[Timestamp] = mapped_column(primary_key=True)
    rate: Mapped[Decimal] = mapped_column(Numeric)
    mark: Mapped[Decimal] = mapped_column(Numeric)
    quantity: Mapped[int] = mapped_column(BigInteger)  # signed: negative for a short
    amount: Mapped[int] = mapped_column(BigInteger)  # signed as the ledger: paid < 0


class IdempotencyKey(db.Model):
    """`Idempotency-Key` of a trade request: the same key and body return the same order."""

    __tablename__ = "idempotency_keys"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"))
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class MailOutbox(db.Model):
    """A sign-in link to send: the API commits the row, the mailer creates the account (on
    sign-up) and the link, mails it and deletes the row in one transaction. Rows left behind
    by a broker outage are re-enqueued by `mail.sweep_outbox`."""

    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    create_account: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow, index=True)


class CatalogMarket(db.Model):
    """A Backpack market as `flask markets sync` last read it: the object Backpack served, whole,
    and the fields the service filters and sorts by."""

    __tablename__ = "markets"
    __table_args__ = (
        one_of("market_type", MarketType, "market_type_known"),
        one_of("order_book_state", BookState, "order_book_state_known"),
    )

    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    base_symbol: Mapped[str] = mapped_column(String(32))
    quote_symbol: Mapped[str] = mapped_column(String(32))
    market_type: Mapped[str] = mapped_column(String(16))
    order_book_state: Mapped[str] = mapped_column(String(16))
    tick_size: Mapped[Decimal] = mapped_column(Numeric)
    step_size: Mapped[Decimal] = mapped_column(Numeric)
    min_quantity: Mapped[Decimal] = mapped_column(Numeric)
    price_decimals: Mapped[int]
    quantity_decimals: Mapped[int]
    funding_interval_ms: Mapped[int | None] = mapped_column(BigInteger)
    backpack: Mapped[dict] = mapped_column(JSONB)
    synced_at: Mapped[Timestamp]


class CatalogAsset(db.Model):
    """A Backpack asset (`GET /api/v1/assets`), as Backpack served it."""

    __tablename__ = "market_assets"

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    backpack: Mapped[dict] = mapped_column(JSONB)
    synced_at: Mapped[Timestamp]


class FundingRate(db.Model):
    """A perpetual's funding at one boundary: the rate and mark Backpack published last before
    it, as the poller recorded them with the marks (`core.marks`). Settled from here, so an
    engine that was down at the boundary catches up at that boundary's figures."""

    __tablename__ = "funding_rates"

    market: Mapped[str] = mapped_column(String(64), primary_key=True)
    boundary: Mapped[Timestamp] = mapped_column(primary_key=True)
    rate: Mapped[Decimal] = mapped_column(Numeric)
    mark: Mapped[Decimal] = mapped_column(Numeric)


class FundingSettled(db.Model):
    """The last boundary of a market whose funding an engine shard has settled completely."""

    __tablename__ = "funding_settled"

    shard: Mapped[int] = mapped_column(primary_key=True)
    market: Mapped[str] = mapped_column(String(64), primary_key=True)
    boundary: Mapped[Timestamp]


class FundingPayment(db.Model):
    """One position's funding at one boundary: its primary key makes it exactly once. Written
    with its ledger entry (`amount` = that entry's usd + locked deltas) in one transaction."""

    __tablename__ = "funding_payments"
    __table_args__ = (Index("ix_funding_payments_account_boundary", "account_id", "boundary"),)

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    boundary: Mapped[Timestamp] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    market: Mapped[str] = mapped_column(String(64))
    rate: Mapped[Decimal] = mapped_column(Numeric)
    mark: Mapped[Decimal] = mapped_column(Numeric)
    quantity: Mapped[int] = mapped_column(BigInteger)  # signed: negative for a short
    amount: Mapped[int] = mapped_column(BigInteger)  # signed as the ledger: paid < 0
    waived: Mapped[int] = mapped_column(BigInteger, default=0)  # owed beyond free USD and margin


class Candle(db.Model):
    """One minute of an asset's mid price (rounded down), written by the poller at most about
    once a second per asset; longer intervals are aggregated from these in SQL."""

    __tablename__ = "candles"

    asset: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket: Mapped[Timestamp] = mapped_column(primary_key=True)  # the minute's start, UTC
    open: Mapped[int] = mapped_column(BigInteger)
    high: Mapped[int] = mapped_column(BigInteger)
    low: Mapped[int] = mapped_column(BigInteger)
    close: Mapped[int] = mapped_column(BigInteger)
    ticks: Mapped[int]


class EquitySnapshot(db.Model):
    """An account's equity at one moment: taken every minute for accounts with open positions or
    new ledger entries, in one set-based statement per round (`app.account.service`)."""

    __tablename__ = "equity_snapshots"
    __table_args__ = (Index("ix_equity_snapshots_taken_at", "taken_at"),)

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    taken_at: Mapped[Timestamp] = mapped_column(primary_key=True)
    cash: Mapped[int] = mapped_column(BigInteger)
    locked_margin: Mapped[int] = mapped_column(BigInteger)
    unrealized_pnl: Mapped[int] = mapped_column(BigInteger)


class AccountReset(db.Model):
    """A reset request: executed by the engine like a trade (same queue, same locks), once."""

    __tablename__ = "account_resets"
    __table_args__ = (
        one_of("status", ResetStatus, "reset_status_known"),
        Index("ix_account_resets_key", "account_id", "idempotency_key", unique=True),
        Index("ix_account_resets_pending", "created_at", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[ResetStatus] = mapped_column(String(8), default=ResetStatus.PENDING)
    closed_positions: Mapped[int | None]
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    done_at: Mapped[Timestamp | None]


def empty_every_table() -> None:
    """Empty every table of the service in one statement (the tests and the bench start from
    nothing); the list is the models' own (`metadata.sorted_tables`), so a new table is included.
    Ids are not restarted: a running process's memory of an id (`app.identity`) stays true.
    A worker's transaction reading two tables in the other order can deadlock with it: the
    tests' caller retries."""
    names = ", ".join(table.name for table in reversed(db.metadata.sorted_tables))
    db.session.execute(text(f"TRUNCATE {names} CASCADE"))
