// The trading terminal. Every number it shows comes from the server (prices, candles, previews,
// PnL, equity); the page formats integer units with Money and never does arithmetic on money.
"use strict";

(() => {
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const USD = 2;
  const QUANTITY = 8;
  const REASONS = {
    user: "Closed by you", liquidation: "Liquidated", stop_loss: "Stop-loss", take_profit: "Take-profit", reset: "Account reset",
  };
  const ENGINE_CLOSES = ["liquidation", "stop_loss", "take_profit"];  // announced as they happen
  // each interval's length in seconds, rendered into the page from the server's one list (core.candles)
  const STEPS = Object.fromEntries($$(".interval").map((button) => [button.dataset.interval, Number(button.dataset.seconds)]));

  const decimals = Object.fromEntries($$(".asset-tab").map((tab) => [tab.dataset.asset, Number(tab.dataset.decimals)]));
  const state = {
    asset: "BTC", interval: "1m", side: "long", orderType: "market", positions: [], selected: null, preview: null,
    balance: null, streams: {}, live: { prices: false, orders: false }, lastCandle: null, account: null,
    mode: "hedging", accounts: [], netSide: "buy", netType: "market",
  };
  const ACCOUNT_KEY = "paper-terminal-account";  // the account chosen last, kept across visits

  // ---- notices and messages -------------------------------------------------------------
  function notify(text, kind = "info", seconds = 10) {
    const notice = document.createElement("div");
    notice.className = `notice ${kind}`;
    notice.setAttribute("role", kind === "alert" ? "alert" : "status");
    notice.textContent = text;
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "dismiss";
    dismiss.setAttribute("aria-label", "Dismiss");
    dismiss.textContent = "×";
    dismiss.addEventListener("click", () => notice.remove());
    notice.append(dismiss);
    $("#notices").append(notice);
    setTimeout(() => notice.remove(), seconds * 1000);
  }

  function say(element, text, kind = "") {
    element.textContent = text;
    element.className = `message ${kind}`;
    // the answer sits under the form: on a short window it would stay below the panel's fold
    if (text) element.scrollIntoView({ block: "nearest" });
  }

  // ---- sign-in ----------------------------------------------------------------------------
  function showSignIn(text = "") {
    Object.values(state.streams).forEach((stream) => stream.close());
    state.streams = {};
    $("#terminal").hidden = true;
    $("#signin").hidden = false;
    say($("#signin-message"), text, text ? "error" : "");
    $("#signin-email").focus();
  }

  $("#signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const email = $("#signin-email").value.trim();
    const message = $("#signin-message");
    if (!$("#signin-email").checkValidity() || !email) {
      say(message, "Enter your e-mail address.", "error");
      return;
    }
    $("#signin-submit").disabled = true;
    try {
      await Api.post("/api/v1/signup", { email });
      let text = `Check your mail: a sign-in link is on its way to ${email}. It works once, for 15 minutes.`;
      if (document.body.dataset.mailIsLogged === "true") {
        text += " No mail server is configured here, so the link is written to the log of the mailer process " +
          `(look for “sign-in link for ${email}”).`;
      }
      say(message, text, "success");
    } catch (error) {
      say(message, error.message, "error");
    } finally {
      $("#signin-submit").disabled = false;
    }
  });

  $("#signout").addEventListener("click", async () => {
    await Api.post("/api/v1/signout").catch(() => null);
    showSignIn("You are signed out.");
  });

  // ---- streams ---------------------------------------------------------------------------
  function openStream(name, url, handlers, onOpen) {
    let source = null;
    let delay = 1000;
    let closed = false;
    const connect = () => {
      source = new EventSource(url);
      source.addEventListener("open", () => {
        delay = 1000;
        setLive(name, true);
        if (onOpen) onOpen();
      });
      for (const [event, handle] of Object.entries(handlers)) {
        source.addEventListener(event, (message) => handle(JSON.parse(message.data)));
      }
      source.addEventListener("error", () => {
        setLive(name, false);
        if (source.readyState === EventSource.CLOSED && !closed) {  // the browser gave up: we do not
          setTimeout(() => { if (!closed) connect(); }, delay);
          delay = Math.min(delay * 2, 15000);
          if (name === "orders") checkSession();
        }
      });
    };
    connect();
    return { close: () => { closed = true; source.close(); } };
  }

  function setLive(name, live) {
    state.live[name] = live;
    const connection = $("#connection");
    const all = state.live.prices && state.live.orders;
    connection.textContent = all ? "Live" : "Reconnecting…";
    connection.className = `connection ${all ? "live" : "down"}`;
  }

  async function checkSession() {
    try {
      await Api.get("/api/v1/balance/");
    } catch (error) {
      if (error.code === "unauthorized") showSignIn("Your session ended. Sign in again to continue.");
    }
  }

  // ---- prices and the chart --------------------------------------------------------------
  function showQuote(asset, quote) {
    const tab = $(`.asset-tab[data-asset="${asset}"]`);
    if (!tab) return;
    $(".bid", tab).textContent = Money.format(quote.bid, decimals[asset]);
    $(".ask", tab).textContent = Money.format(quote.ask, decimals[asset]);
    $(".spread", tab).textContent = Money.format(quote.spread, decimals[asset]);
  }

  const chart = LightweightCharts.createChart($("#chart"), {
    autoSize: true,
    layout: { background: { type: "solid", color: "#111827" }, textColor: "#cbd5e1", attributionLogo: false },
    grid: { vertLines: { color: "#1f2937" }, horzLines: { color: "#1f2937" } },
    rightPriceScale: { borderColor: "#374151" },
    timeScale: { borderColor: "#374151", timeVisible: true, secondsVisible: false },
    crosshair: { mode: 0 },
  });
  const series = chart.addSeries(LightweightCharts.CandlestickSeries, {
    upColor: "#22c55e", downColor: "#f87171", borderVisible: false, wickUpColor: "#22c55e", wickDownColor: "#f87171",
  });
  let priceLines = [];

  function useAssetFormat() {
    const places = decimals[state.asset];
    series.applyOptions({ priceFormat: { type: "custom", minMove: 1, formatter: (p) => Money.format(Math.round(p), places) } });
  }

  async function loadCandles() {
    const { asset, interval } = state;
    $("#chart-title").textContent = `${perpetuals[asset] ? asset : `${asset}/USD`} · ${interval} · mid price`;
    useAssetFormat();
    try {
      const { data } = await Api.get(`/api/v1/candles?asset=${asset}&interval=${interval}&limit=500`);
      if (asset !== state.asset || interval !== state.interval) return;
      series.setData(data.candles.map(({ time, open, high, low, close }) => ({ time, open, high, low, close })));
      const last = data.candles[data.candles.length - 1];
      state.lastCandle = last ? { time: last.time, open: last.open, high: last.high, low: last.low, close: last.close } : null;
      drawPriceLines();
    } catch (error) {
      notify(`Candles unavailable: ${error.message}`, "error");
    }
  }

  function onPrice(quote) {
    showQuote(quote.asset, quote);
    if (quote.asset !== state.asset) return;
    const step = STEPS[state.interval];
    const seconds = Math.floor(quote.time / 1000000);
    const bucket = seconds - (seconds % step);
    const last = state.lastCandle;
    if (last && last.time === bucket) {
      last.high = Math.max(last.high, quote.mid);
      last.low = Math.min(last.low, quote.mid);
      last.close = quote.mid;
    } else if (!last || bucket > last.time) {
      state.lastCandle = { time: bucket, open: quote.mid, high: quote.mid, low: quote.mid, close: quote.mid };
    } else {
      return;
    }
    series.update({ ...state.lastCandle });
    previewOnTick();
  }

  function drawPriceLines() {
    priceLines.forEach((line) => series.removePriceLine(line));
    priceLines = [];
    const position = state.positions.find((p) => p.orderId === state.selected);
    if (!position || position.asset !== state.asset) return;
    const lines = [
      ["Entry", position.openPrice, "#60a5fa"], ["Liquidation", position.liquidationPrice, "#f59e0b"],
      ["Stop-loss", position.stopLoss, "#f87171"], ["Take-profit", position.takeProfit, "#22c55e"],
    ];
    for (const [title, price, color] of lines) {
      if (price !== null && price !== undefined) {
        priceLines.push(series.createPriceLine({ price, color, title, lineWidth: 1, lineStyle: 2, axisLabelVisible: true }));
      }
    }
  }

  // ---- perpetuals: the market picker, the mark and funding of the one on screen ------------
  const perpetuals = {};  // symbol -> its `/api/v1/markets` listing: the open perpetuals one can pick
  let markLine = null;

  async function loadMarkets() {
    try {
      const { data } = await Api.get("/api/v1/markets?marketType=PERP");
      const open = data.filter((market) => market.orderBookState === "Open");
      open.forEach((market) => { perpetuals[market.symbol] = market; });
      showNetMarket();
      state.positions.forEach((position) => ensureMarketTab(position.asset));
      $("#market-list").replaceChildren(...open.map((market) => {
        const option = document.createElement("option");
        option.value = market.symbol;
        option.label = `${market.baseSymbol} perpetual`;
        return option;
      }));
    } catch (error) {
      notify(`Markets unavailable: ${error.message}`, "error");
    }
  }

  /** The perpetual a person means by what they typed: exact, then by start, then anywhere. */
  function findMarket(text) {
    const query = text.trim().toUpperCase();
    const symbols = Object.keys(perpetuals).sort();
    if (!query) return null;
    return symbols.find((s) => s === query) || symbols.find((s) => s.startsWith(query))
      || symbols.find((s) => s.includes(query)) || null;
  }

  /** A tab for a perpetual: the one picked, and every one the account holds a position on. */
  function ensureMarketTab(symbol) {
    if ($(`.asset-tab[data-asset="${CSS.escape(symbol)}"]`) || !perpetuals[symbol]) return;
    const tab = $(".asset-tab").cloneNode(true);
    tab.dataset.asset = symbol;
    tab.dataset.decimals = String(perpetuals[symbol].priceDecimals);
    tab.setAttribute("aria-selected", "false");
    $(".symbol", tab).textContent = symbol;
    $$(".bid, .ask, .spread", tab).forEach((value) => { value.textContent = "–"; });
    tab.addEventListener("click", () => selectAsset(symbol));
    $(".market-picker").before(tab);
    decimals[symbol] = perpetuals[symbol].priceDecimals;
  }

  function pickMarket(symbol) {
    ensureMarketTab(symbol);
    $("#market-search").value = "";
    selectAsset(symbol);
  }

  $("#market-search").addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    const symbol = findMarket(event.target.value);
    if (symbol) pickMarket(symbol); else notify(`No open perpetual matches “${event.target.value}”.`, "error", 5);
  });
  $("#market-search").addEventListener("change", (event) => {
    if (perpetuals[event.target.value]) pickMarket(event.target.value);
  });

  function countdown(untilMs) {
    const seconds = Math.max(0, Math.round((untilMs - Date.now()) / 1000));
    const pad = (n) => String(n).padStart(2, "0");
    return `${pad(Math.floor(seconds / 3600))}:${pad(Math.floor(seconds / 60) % 60)}:${pad(seconds % 60)}`;
  }

  async function refreshPerpetual() {
    const asset = state.asset;
    $("#perp-info").hidden = !perpetuals[asset];
    if (!perpetuals[asset]) return;
    try {
      const { data } = await Api.get(`/api/v1/markets?symbol=${encodeURIComponent(asset)}`);
      const market = data[0];
      if (asset !== state.asset || !market) return;
      $("#perp-mark").textContent = Money.format(market.markPrice, market.priceDecimals);
      $$(`#positions-body tr[data-asset="${CSS.escape(asset)}"] td.mark`).forEach((mark) => {
        mark.textContent = Money.format(market.markPrice, market.priceDecimals);  // the rows' mark keeps up too
      });
      $("#perp-funding").textContent = market.fundingRate === null ? "–" : Money.percent(market.fundingRate);
      $("#perp-countdown").textContent = market.nextFundingTimestamp ? countdown(market.nextFundingTimestamp) : "–";
      if (markLine) series.removePriceLine(markLine);
      markLine = market.markPrice === null ? null : series.createPriceLine({
        price: market.markPrice, color: "#a78bfa", title: "Mark", lineWidth: 1, lineStyle: 1, axisLabelVisible: true,
      });
    } catch (error) {
      $("#perp-mark").textContent = "–";
    }
  }

  function selectAsset(asset) {
    state.asset = asset;
    showNetMarket();
    if (markLine) series.removePriceLine(markLine);
    markLine = null;
    refreshPerpetual();
    $$(".asset-tab").forEach((tab) => tab.setAttribute("aria-selected", String(tab.dataset.asset === asset)));
    $$("#stop-loss, #take-profit").forEach((input) => { input.placeholder = "USD price"; });
    loadCandles();
    schedulePreview(0);
  }

  $$(".asset-tab").forEach((tab) => tab.addEventListener("click", () => selectAsset(tab.dataset.asset)));
  $$(".interval").forEach((button) => button.addEventListener("click", () => {
    state.interval = button.dataset.interval;
    $$(".interval").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    loadCandles();
  }));

  // ---- account: balance, positions, history -----------------------------------------------
  function showBalance(balance) {
    state.balance = balance;
    $("#free-usd").textContent = Money.format(balance.USD.balance, USD);
    $("#locked-margin").textContent = Money.format(balance.lockedMargin.balance, USD);
  }

  function showPnl(pnl) {
    const unrealized = $("#unrealized-pnl");
    unrealized.textContent = Money.format(pnl.unrealizedPnl, USD, { signed: true });
    unrealized.className = tone(pnl.unrealizedPnl);
    $("#equity").textContent = Money.format(pnl.equity, USD);
    for (const [orderId, value] of Object.entries(pnl.positions)) {
      const cell = document.getElementById(`pnl-${orderId}`);
      if (cell) {
        cell.textContent = Money.format(value, USD, { signed: true });
        cell.className = `num ${tone(value)}`;
      }
    }
  }

  function tone(value) {
    if (value === null || value === undefined || value === 0) return "";
    return value > 0 ? "gain" : "loss";
  }

  function cell(text, className = "") {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function renderPositions() {
    const body = $("#positions-body");
    body.replaceChildren();
    for (const order of state.positions) {
      const row = document.createElement("tr");
      row.dataset.orderId = order.orderId;
      row.dataset.asset = order.asset;
      row.tabIndex = 0;
      row.setAttribute("aria-selected", String(order.orderId === state.selected));
      const places = order.decimals;
      const stops = `${Money.format(order.stopLoss, places)} / ${Money.format(order.takeProfit, places)}`;
      const pnl = cell(Money.format(order.unrealizedPnl, USD, { signed: true }), `num ${tone(order.unrealizedPnl)}`);
      pnl.id = `pnl-${order.orderId}`;
      row.append(
        cell(order.asset), cell(`${order.type} ${order.leverage}×`, order.type),
        cell(Money.format(order.quantity, QUANTITY), "num"), cell(Money.format(order.openPrice, places), "num"),
        cell(Money.format(order.markPrice, places), "num mark"),
        cell(Money.format(order.liquidationPrice, places), "num"), cell(stops, "num"),
        cell(Money.format(order.margin, USD), "num"),
        cell(Money.format(order.cumulativeFunding, USD, { signed: true }), `num funding ${tone(order.cumulativeFunding)}`), pnl,
      );
      const actions = document.createElement("td");
      const close = document.createElement("button");
      close.type = "button";
      close.className = "close-position";
      close.textContent = "Close";
      close.setAttribute("aria-label", `Close ${order.asset} ${order.type}`);
      close.addEventListener("click", (event) => { event.stopPropagation(); closePosition(order, close); });
      actions.append(close);
      row.append(actions);
      const select = () => {
        state.selected = order.orderId;
        if (order.asset !== state.asset) selectAsset(order.asset); else drawPriceLines();
        renderPositions();
      };
      row.addEventListener("click", select);
      row.addEventListener("keydown", (event) => { if (event.key === "Enter") select(); });
      body.append(row);
    }
    $("#positions-empty").hidden = state.positions.length > 0;
    $("#positions-count").textContent = String(state.positions.length);
  }

  function renderHistory(orders) {
    const body = $("#history-body");
    body.replaceChildren();
    for (const order of orders) {
      const row = document.createElement("tr");
      row.dataset.orderId = order.orderId;
      row.append(
        cell(order.asset), cell(`${order.type} ${order.leverage}×`, order.type),
        cell(Money.format(order.openPrice, order.decimals), "num"), cell(Money.format(order.closePrice, order.decimals), "num"),
        cell(Money.format(order.pnl, USD, { signed: true }), `num ${tone(order.pnl)}`),
        cell(REASONS[order.closeReason] || order.closeReason || ""),
        cell(order.closedAt ? new Date(order.closedAt).toLocaleString() : ""),
      );
      body.append(row);
    }
    $("#history-empty").hidden = orders.length > 0;
  }

  function renderWorking(orders) {
    const body = $("#working-body");
    body.replaceChildren();
    for (const order of orders) {
      const row = document.createElement("tr");
      const price = order.orderType === "limit" ? order.limitPrice : order.stopPrice;
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "close-position";
      cancel.textContent = "Cancel";
      cancel.setAttribute("aria-label", `Cancel ${order.asset} ${order.type} ${order.orderType}`);
      cancel.addEventListener("click", () => cancelOrder(order, cancel));
      const actions = document.createElement("td");
      actions.append(cancel);
      row.append(
        cell(order.asset), cell(`${order.type} ${order.leverage}×`, order.type), cell(order.orderType),
        cell(Money.format(price, order.decimals), "num"), cell(Money.format(order.quantity, QUANTITY), "num"),
        cell(Money.format(order.margin, USD), "num"), actions,
      );
      body.append(row);
    }
    $("#working-empty").hidden = orders.length > 0;
  }

  async function cancelOrder(order, button) {
    button.disabled = true;
    try {
      const { status } = await Api.post("/api/v1/trade/cancel", { orderId: order.orderId });
      notify(status === 202 ? "Cancel accepted; the engine is executing it." :
        `Cancelled the ${order.asset} ${order.orderType} order; its margin is back.`, "success");
    } catch (error) {
      if (error.code === "unauthorized") return showSignIn(error.message);
      notify(error.code === "not_working" ? "Too late: the order already filled or ended." : error.message, "error");
    } finally {
      refreshOrders();
    }
  }

  async function refreshOrders() {
    if (state.mode === "netting") return refreshNetting();
    try {
      const [open, working, closed, balance] = await Promise.all([
        Api.get("/api/v1/trades?status=open&page_size=100"),
        Api.get("/api/v1/trades?status=working&page_size=100"),
        Api.get("/api/v1/trades?status=closed&page_size=50"),
        Api.get("/api/v1/balance/"),
      ]);
      state.positions = open.data;
      state.positions.forEach((position) => ensureMarketTab(position.asset));
      if (!state.positions.some((p) => p.orderId === state.selected)) state.selected = null;
      renderPositions();
      renderWorking(working.data);
      renderHistory(closed.data);
      showBalance(balance.data);
      drawPriceLines();
    } catch (error) {
      if (error.code === "unauthorized") showSignIn(error.message);
    }
  }

  function onAccountChange() {
    if (!$("#account").hidden) loadAccount();
  }

  function onOrder(order) {
    if (order.status === "open" && order.orderType !== "market") {
      const at = Money.format(order.openPrice, order.decimals);
      notify(`Your ${order.asset} ${order.orderType} order filled at ${at}.`, "success", 15);
    }
    if (order.status === "closed" && ENGINE_CLOSES.includes(order.closeReason)) {
      const what = `${order.asset} ${order.type} ${order.leverage}×`;
      const at = Money.format(order.closePrice, order.decimals);
      const pnl = Money.format(order.pnl, USD, { signed: true });
      notify(`${REASONS[order.closeReason]}: ${what} closed at ${at} (PnL ${pnl} USD).`,
        order.closeReason === "liquidation" ? "alert" : "info", 30);
    }
    refreshOrders();
  }

  async function closePosition(order, button) {
    button.disabled = true;
    try {
      const { status, data } = await Api.post("/api/v1/trade/close", { orderId: order.orderId });
      if (status === 202) {
        notify("Close accepted; the engine is executing it.");
      } else {
        const pnl = Money.format(data.pnl, USD, { signed: true });
        notify(`Closed ${data.asset} ${data.type} at ${Money.format(data.closePrice, data.decimals)} (PnL ${pnl} USD).`, "success");
      }
    } catch (error) {
      if (error.code === "unauthorized") return showSignIn(error.message);
      notify(error.message, "error");
    } finally {
      button.disabled = false;
      refreshOrders();
    }
  }

  $$(".tab").forEach((tab) => tab.addEventListener("click", () => {
    $$(".tab").forEach((t) => t.setAttribute("aria-selected", String(t === tab)));
    for (const panel of ["positions", "history", "account"]) $(`#${panel}`).hidden = tab.dataset.tab !== panel;
    if (tab.dataset.tab === "account") loadAccount();
  }));

  // ---- account: equity curve, activities, reset ------------------------------------------
  const ACTIVITY = {
    deposit: "Deposit", open: "Margin locked", close: "Position closed", fee: "Fee", release: "Margin released",
    reset: "Account reset", funding: "Funding", realized_pnl: "Realized PnL", liquidation_fee: "Liquidation fee",
    insurance: "Deficit covered",
  };
  let equityChart = null;
  let equitySeries = null;

  function ensureEquityChart() {
    if (equityChart) return;
    equityChart = LightweightCharts.createChart($("#equity-chart"), {
      autoSize: true,
      layout: { background: { type: "solid", color: "#111827" }, textColor: "#cbd5e1", attributionLogo: false },
      grid: { vertLines: { visible: false }, horzLines: { color: "#1f2937" } },
      timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#374151" },
      rightPriceScale: { borderColor: "#374151" },
    });
    equitySeries = equityChart.addSeries(LightweightCharts.AreaSeries, {
      lineColor: "#60a5fa", topColor: "rgba(96, 165, 250, 0.35)", bottomColor: "rgba(96, 165, 250, 0.02)",
      priceFormat: { type: "custom", minMove: 1, formatter: (p) => Money.format(Math.round(p), USD) },
    });
  }

  // ---- API keys of a netting account (Backpack paper mode) -------------------------------
  async function loadApiKeys() {
    const panel = $("#api-keys");
    panel.hidden = state.mode !== "netting";
    if (panel.hidden) return;
    $("#backpack-url").textContent = `${location.origin}/backpack`;
    const { data } = await Api.get("/api/v1/api-keys");
    const keys = data.filter((key) => key.accountId === state.account);
    $("#api-keys-body").replaceChildren(...keys.map((key) => {
      const row = document.createElement("tr");
      const revoke = document.createElement("button");
      revoke.type = "button";
      revoke.className = "close-position";
      revoke.textContent = "Revoke";
      revoke.setAttribute("aria-label", `Revoke ${key.label}`);
      revoke.addEventListener("click", async () => {
        revoke.disabled = true;
        try {
          await Api.delete(`/api/v1/api-keys/${key.id}`);
          notify(`Revoked ${key.label}: requests it signs are refused from now on.`, "info");
        } catch (error) {
          notify(error.message, "error");
        }
        loadApiKeys();
      });
      const actions = document.createElement("td");
      actions.append(revoke);
      row.append(
        cell(key.label), cell(key.publicKey, "key"), cell(new Date(key.createdAt).toLocaleString()),
        cell(key.lastUsedAt ? new Date(key.lastUsedAt).toLocaleString() : "never"), actions,
      );
      return row;
    }));
    $("#api-keys-empty").hidden = keys.length > 0;
  }

  $("#api-key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const label = $("#api-key-label").value.trim() || "bot";
    $("#api-key-create").disabled = true;
    try {
      const { data } = await Api.post("/api/v1/api-keys", { accountId: state.account, label });
      $("#api-key-public").textContent = data.publicKey;
      $("#api-key-seed").textContent = data.seed;
      $("#api-key-secret").hidden = false;
      $("#api-key-label").value = "";
      loadApiKeys();
    } catch (error) {
      if (error.code === "unauthorized") return showSignIn(error.message);
      notify(error.message, "error");
    } finally {
      $("#api-key-create").disabled = false;
    }
  });

  async function loadAccount() {
    ensureEquityChart();
    loadApiKeys().catch((error) => notify(error.message, "error"));
    try {
      const [history, activity] = await Promise.all([
        Api.get("/api/v1/portfolio/history?period=1D&timeframe=5m"),
        Api.get("/api/v1/activities?limit=50"),
      ]);
      equitySeries.setData(history.data.points.map((p) => ({ time: p.time, value: p.equity })));
      LightweightCharts.createSeriesMarkers(equitySeries, history.data.resets.map((time) => ({
        time: time - (time % 300), position: "aboveBar", color: "#f87171", shape: "arrowDown", text: "Reset",
      })));
      equityChart.timeScale().fitContent();
      const body = $("#activities-body");
      body.replaceChildren();
      for (const item of activity.data.activities) {
        const row = document.createElement("tr");
        row.append(
          cell(new Date(item.time).toLocaleString()), cell(ACTIVITY[item.type] || item.type),
          cell(Money.format(item.usd, USD, { signed: true }), `num ${tone(item.usd)}`),
          cell(Money.format(item.lockedMargin, USD, { signed: true }), "num"),
        );
        body.append(row);
      }
    } catch (error) {
      if (error.code === "unauthorized") return showSignIn(error.message);
      notify(error.message, "error");
    }
  }

  $("#reset").addEventListener("click", () => { $("#reset-confirm").hidden = false; $("#reset-yes").focus(); });
  $("#reset-no").addEventListener("click", () => { $("#reset-confirm").hidden = true; });
  $("#reset-yes").addEventListener("click", async () => {
    const button = $("#reset-yes");
    button.disabled = true;
    try {
      const key = crypto.randomUUID ? crypto.randomUUID() : String(Date.now());
      const { status, data } = await Api.post("/api/v1/account/reset", undefined, { "Idempotency-Key": key });
      $("#reset-confirm").hidden = true;
      if (status === 202) {
        notify("Reset accepted; the engine is executing it.");
      } else {
        const free = Money.format(data.balance.USD.balance, USD);
        notify(`Account reset: ${data.closedPositions} position(s) closed; free USD is ${free}.`, "success");
      }
      refreshOrders();
      loadAccount();
    } catch (error) {
      if (error.code === "unauthorized") return showSignIn(error.message);
      notify(error.message, "error");
    } finally {
      button.disabled = false;
    }
  });

  // ---- the order ticket -------------------------------------------------------------------
  let previewTimer = null;
  let previewAt = 0;

  function setSide(side) {
    state.side = side;
    $$(".side").forEach((button) => button.setAttribute("aria-pressed", String(button.dataset.side === side)));
    $("#submit-order").className = `primary ${side}`;
    setOrderType(state.orderType);
    schedulePreview(0);
  }

  function setOrderType(kind) {
    state.orderType = kind;
    $$(".order-type").forEach((button) => button.setAttribute("aria-pressed", String(button.dataset.type === kind)));
    $("#trigger-field").hidden = kind === "market";
    $("#trigger-label").textContent = kind === "stop" ? "Stop price (USD)" : "Limit price (USD)";
    $("#submit-order").textContent = `${kind === "market" ? "Open" : "Place"} ${state.side}${kind === "market" ? "" : ` ${kind}`}`;
    schedulePreview(0);
  }

  function setLeverage(value) {
    const leverage = Math.min(100, Math.max(1, Math.round(Number(value)) || 1));
    $("#leverage").value = leverage;
    $("#leverage-number").value = leverage;
    $("#leverage-value").textContent = `${leverage}×`;
    schedulePreview(150);
  }

  function schedulePreview(delay) {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(updatePreview, delay);
  }

  function previewOnTick() {  // the fill price follows the market, at most once a second
    if (Date.now() - previewAt >= 1000) schedulePreview(0);
  }

  async function updatePreview() {
    previewAt = Date.now();
    const margin = Money.parse($("#margin").value, USD);
    const fields = $$("#preview dd[data-field]");
    const show = (values) => fields.forEach((dd) => { dd.textContent = values[dd.dataset.field] ?? "–"; });
    if (margin === null || margin < 100) {
      state.preview = null;
      show({ fee: "none" });
      return;
    }
    const { asset, side, orderType } = state;
    const leverage = Number($("#leverage").value);
    let query = `asset=${asset}&type=${side}&margin=${margin}&leverage=${leverage}&orderType=${orderType}`;
    if (orderType !== "market") {  // the quantity comes from the order's own price: no price, no preview
      const trigger = Money.parse($("#trigger-price").value, decimals[asset]);
      if (trigger === null || trigger <= 0) {
        state.preview = null;
        show({ price: `enter the ${orderType} price` });
        return;
      }
      query += `&${orderType === "limit" ? "limitPrice" : "stopPrice"}=${trigger}`;
    }
    try {
      const { data } = await Api.get(`/api/v1/trade/preview?${query}`);
      if (asset !== state.asset || side !== state.side || orderType !== state.orderType) return;
      state.preview = { ...data, asset, side, orderType };
      const how = data.working ? " (works until the book reaches it)" : data.fillModel === "depth" ? "" : " (top of book)";
      show({
        price: `${Money.format(data.price, data.decimals)} USD${how}`,
        quantity: `${Money.format(data.quantity, data.quantityDecimals)} ${asset}`,
        notional: `${Money.format(data.notional, USD)} USD`,
        liquidationPrice: `${Money.format(data.liquidationPrice, data.decimals)} USD`,
        fee: data.fee ? `${Money.format(data.fee, USD)} USD` : "none",
      });
    } catch (error) {
      state.preview = null;
      const why = { price_unavailable: "no fresh price", insufficient_liquidity: "book too thin for this size" };
      show({ price: why[error.code] || "–" });
    }
  }

  function orderBody() {
    const asset = state.asset;
    const margin = Money.parse($("#margin").value, USD);
    if (margin === null || margin < 100) throw new Error("Enter a margin of at least 1.00 USD, e.g. 100.00.");
    const body = { asset, type: state.side, margin, leverage: Number($("#leverage").value), orderType: state.orderType };
    if (state.orderType !== "market") {
      const trigger = Money.parse($("#trigger-price").value, decimals[asset]);
      if (trigger === null || trigger <= 0) throw new Error(`Enter the ${state.orderType} price in USD.`);
      body[state.orderType === "limit" ? "limitPrice" : "stopPrice"] = trigger;
    }
    const slippage = Money.percentToBps($("#slippage").value);
    if (slippage === null || slippage < 1 || slippage > 10000) throw new Error("Slippage is a percentage from 0.01 to 100.");
    body.slippage = slippage;
    for (const [id, field] of [["#stop-loss", "stopLoss"], ["#take-profit", "takeProfit"]]) {
      const text = $(id).value.trim();
      if (!text) continue;
      const price = Money.parse(text, decimals[asset]);
      if (price === null || price <= 0) throw new Error(`Enter the ${field === "stopLoss" ? "stop-loss" : "take-profit"} as a price in USD.`);
      body[field] = price;
    }
    const preview = state.preview;
    if (state.orderType === "market" && preview && preview.asset === asset && preview.side === state.side && preview.orderType === "market") {
      body.price = preview.price;
    }
    return body;
  }

  $$(".side").forEach((button) => button.addEventListener("click", () => setSide(button.dataset.side)));
  $$(".order-type").forEach((button) => button.addEventListener("click", () => setOrderType(button.dataset.type)));
  $("#leverage").addEventListener("input", (event) => setLeverage(event.target.value));
  $("#leverage-number").addEventListener("change", (event) => setLeverage(event.target.value));
  $("#margin").addEventListener("input", () => schedulePreview(250));
  $("#trigger-price").addEventListener("input", () => schedulePreview(250));

  $("#ticket").addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = $("#ticket-message");
    let body;
    try {
      body = orderBody();
    } catch (error) {
      return say(message, error.message, "error");
    }
    const submit = $("#submit-order");
    submit.disabled = true;
    say(message, "Sending…");
    try {
      const { status, data } = await Api.post("/api/v1/trade/create", body);
      if (status === 202) {
        say(message, "Accepted; the engine is executing it.", "success");
      } else if (data.status === "working") {
        const at = Money.format(data.orderType === "limit" ? data.limitPrice : data.stopPrice, data.decimals);
        say(message, `Placed ${data.asset} ${data.type} ${data.orderType} at ${at} USD: working, margin reserved.`, "success");
      } else {
        const at = Money.format(data.openPrice, data.decimals);
        say(message, `Opened ${data.asset} ${data.type} ${data.leverage}× at ${at} USD.`, "success");
        state.selected = data.orderId;
      }
      refreshOrders();
    } catch (error) {
      if (error.code === "unauthorized") return showSignIn(error.message);
      say(message, error.message, "error");
    } finally {
      submit.disabled = false;
      schedulePreview(0);
    }
  });

  // ---- the depth ladder: the live book's best levels, as fills walk it ---------------------
  function ladderRows(levels, places) {
    return levels.map((level) => {
      const row = document.createElement("tr");
      row.append(cell(Money.format(level.price, places)), cell(Money.format(level.quantity, QUANTITY).slice(0, -4)));
      return row;
    });
  }

  async function refreshLadder() {
    const asset = state.asset;
    try {
      const { data } = await Api.get(`/api/v1/book?asset=${asset}&levels=8`);
      if (asset !== state.asset) return;
      if (!data.live) throw new Error("no depth book");
      $("#ladder-asks").replaceChildren(...ladderRows([...data.asks].reverse(), data.decimals));
      $("#ladder-bids").replaceChildren(...ladderRows(data.bids, data.decimals));
      $("#ladder-empty").hidden = true;
    } catch (error) {
      $("#ladder-asks").replaceChildren();
      $("#ladder-bids").replaceChildren();
      $("#ladder-empty").hidden = false;
    }
  }

  // ---- netting accounts (Backpack's model): the ticket, positions and open orders -----------
  const NET_OPEN = ["new", "partially_filled", "trigger_pending"];
  const STATUS_TEXT = {
    new: "Working", partially_filled: "Partly filled", trigger_pending: "Waiting for trigger", filled: "Filled",
    cancelled: "Cancelled", expired: "Expired", rejected: "Rejected",
  };

  /** The picked market as a netting order names it: a perpetual, else null (netting trades perpetuals). */
  function netMarket() {
    return perpetuals[state.asset] || null;
  }

  function showNetMarket() {
    const market = netMarket();
    $("#net-base").textContent = market ? market.baseSymbol : "pick a perpetual";
    $("#net-submit").disabled = !market;
    if (state.mode === "netting" && !market) {
      say($("#net-message"), "Netting accounts trade perpetuals: pick one under Markets.", "error");
    } else if ($("#net-message").classList.contains("error") && market) {
      say($("#net-message"), "");
    }
  }

  function setNetSide(side) {
    state.netSide = side;
    $$(".net-side").forEach((button) => button.setAttribute("aria-pressed", String(button.dataset.side === side)));
    $("#net-submit").className = `primary ${side === "buy" ? "long" : "short"}`;
    $("#net-submit").textContent = side === "buy" ? "Buy" : "Sell";
  }

  function setNetType(kind) {
    state.netType = kind;
    $$(".net-type").forEach((button) => button.setAttribute("aria-pressed", String(button.dataset.type === kind)));
    $("#net-price-field").hidden = kind !== "limit";
    $("#net-post-only").disabled = kind !== "limit";
  }

  $$(".net-side").forEach((button) => button.addEventListener("click", () => setNetSide(button.dataset.side)));
  $$(".net-type").forEach((button) => button.addEventListener("click", () => setNetType(button.dataset.type)));

  $("#net-ticket").addEventListener("submit", async (event) => {
    event.preventDefault();
    const market = netMarket();
    if (!market) return showNetMarket();
    const quantity = Money.parse($("#net-quantity").value, market.quantityDecimals);
    if (!quantity) {
      return say($("#net-message"), `Enter a quantity of ${market.baseSymbol} with at most ${market.quantityDecimals} decimals.`, "error");
    }
    const body = {
      symbol: market.symbol, side: state.netSide, orderType: state.netType, quantity,
      timeInForce: $("#net-tif").value, reduceOnly: $("#net-reduce-only").checked,
    };
    for (const [field, input] of [["price", "#net-price"], ["triggerPrice", "#net-trigger"]]) {
      if (field === "price" && state.netType !== "limit") continue;
      const text = $(input).value.trim();
      if (!text && field === "triggerPrice") continue;
      const price = Money.parse(text, market.priceDecimals);
      if (!price) return say($("#net-message"), `Enter a USD price with at most ${market.priceDecimals} decimals.`, "error");
      body[field] = price;
    }
    if (state.netType === "limit") body.postOnly = $("#net-post-only").checked;
    $("#net-submit").disabled = true;
    try {
      const { data } = await Api.post("/api/v1/orders", body);
      const filled = Money.format(data.executedQuantity, data.quantityDecimals);
      say($("#net-message"), `${STATUS_TEXT[data.status]}: ${filled} of ${Money.format(data.quantity, data.quantityDecimals)} ${market.baseSymbol}` +
        (data.fills.length ? ` in ${data.fills.length} fill${data.fills.length > 1 ? "s" : ""}` : "") + ".", "success");
      refreshNetting();
    } catch (error) {
      if (error.code === "unauthorized") return showSignIn(error.message);
      say($("#net-message"), error.message, "error");
    } finally {
      $("#net-submit").disabled = false;
    }
  });

  async function refreshNetting() {
    try {
      const [positions, orders, balance] = await Promise.all([
        Api.get("/api/v1/positions"), Api.get("/api/v1/orders"), Api.get("/api/v1/balance/"),
      ]);
      positions.data.forEach((position) => ensureMarketTab(position.symbol));
      renderNetPositions(positions.data);
      renderNetOrders(orders.data.filter((order) => NET_OPEN.includes(order.status)));
      showBalance(balance.data);
    } catch (error) {
      if (error.code === "unauthorized") showSignIn(error.message);
    }
  }

  function renderNetPositions(positions) {
    $("#net-positions-body").replaceChildren(...positions.map((p) => {
      const row = document.createElement("tr");
      const places = p.priceDecimals;
      const side = p.netQuantity > 0 ? "long" : "short";
      row.append(
        cell(p.symbol), cell(Money.format(p.netQuantity, p.quantityDecimals, { signed: true }), `num ${side}`),
        cell(Money.format(p.entryPrice, places), "num"), cell(Money.format(p.markPrice, places), "num mark"),
        cell(Money.format(p.estLiquidationPrice, places), "num"),
        cell(Money.format(p.cumulativeFunding, USD, { signed: true }), `num funding ${tone(p.cumulativeFunding)}`),
        cell(Money.format(p.realizedPnl, USD, { signed: true }), `num ${tone(p.realizedPnl)}`),
        cell(Money.format(p.unrealizedPnl, USD, { signed: true }), `num ${tone(p.unrealizedPnl)}`),
      );
      row.lastChild.id = `pnl-${p.symbol}`;  // the order stream's PnL events keep it current
      return row;
    }));
    $("#net-positions-empty").hidden = positions.length > 0;
    $("#positions-count").textContent = String(positions.length);
  }

  function renderNetOrders(orders) {
    $("#net-orders-body").replaceChildren(...orders.map((order) => {
      const row = document.createElement("tr");
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "close-position";
      cancel.textContent = "Cancel";
      cancel.setAttribute("aria-label", `Cancel ${order.symbol} ${order.side} ${order.orderType}`);
      cancel.addEventListener("click", async () => {
        cancel.disabled = true;
        try {
          await Api.delete(`/api/v1/orders/${order.id}`);
          notify(`Cancelled your ${order.symbol} ${order.side} order.`, "info");
        } catch (error) {
          notify(error.message, "error");
        }
        refreshNetting();
      });
      const actions = document.createElement("td");
      actions.append(cancel);
      const price = order.price ?? order.triggerPrice;
      row.append(
        cell(order.symbol), cell(order.side, order.side === "buy" ? "long" : "short"), cell(order.orderType),
        cell(Money.format(price, order.priceDecimals), "num"), cell(Money.format(order.quantity, order.quantityDecimals), "num"),
        cell(Money.format(order.executedQuantity, order.quantityDecimals), "num"), cell(STATUS_TEXT[order.status]), actions,
      );
      return row;
    }));
    $("#net-orders-empty").hidden = orders.length > 0;
  }

  // ---- paper accounts: the switcher and a new account ------------------------------------
  async function loadAccounts() {
    const { data } = await Api.get("/api/v1/accounts");
    const stored = Number(localStorage.getItem(ACCOUNT_KEY));
    const usable = data.filter((account) => account.archivedAt === null);
    state.accounts = usable;
    const chosen = usable.find((account) => account.id === stored) || data.find((account) => account.main);
    const select = $("#account-select");
    select.replaceChildren(...usable.map((account) => {
      const option = document.createElement("option");
      option.value = String(account.id);
      option.textContent = `${account.name} · ${account.mode}`;
      return option;
    }));
    select.value = String(chosen.id);
    useAccount(chosen.id);
  }

  function useAccount(id) {
    state.account = id;
    const account = state.accounts.find((a) => a.id === id);
    state.mode = account ? account.mode : "hedging";
    $("#ticket").hidden = state.mode === "netting";
    $("#net-ticket").hidden = state.mode !== "netting";
    $("#hedging-tables").hidden = state.mode === "netting";
    $("#netting-tables").hidden = state.mode !== "netting";
    $("#api-key-secret").hidden = true;  // a seed is shown once, to the account it was made for
    showNetMarket();
    localStorage.setItem(ACCOUNT_KEY, String(id));
    Api.setAccount(id);
    if (state.streams.orders) state.streams.orders.close();
    state.streams.orders = openStream("orders", `/api/v1/stream/orders?accountId=${id}`, {
      balance: (balance) => { showBalance(balance); onAccountChange(); }, pnl: showPnl, order: onOrder,
      funding: refreshOrders,  // a funding round paid or credited the account's positions
    }, refreshOrders);
    state.selected = null;
    onAccountChange();
  }

  $("#account-select").addEventListener("change", (event) => useAccount(Number(event.target.value)));

  function showAccountForm(shown) {
    $("#account-form").hidden = !shown;
    $("#account-new").setAttribute("aria-expanded", String(shown));
    say($("#account-message"), "");
    if (shown) $("#account-name").focus();
  }

  $("#account-new").addEventListener("click", () => showAccountForm($("#account-form").hidden));
  $("#account-cancel").addEventListener("click", () => showAccountForm(false));
  $("#account-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("#account-name").value.trim();
    const deposit = Money.parse($("#account-deposit").value, USD);
    if (!name) return say($("#account-message"), "Name the account.", "error");
    if (deposit === null || deposit <= 0) return say($("#account-message"), "Enter a starting balance in USD, like 5000.00.", "error");
    $("#account-create").disabled = true;
    try {
      const mode = $("#account-mode").value;
      const { data } = await Api.post("/api/v1/accounts", { name, startingBalance: deposit, mode });
      localStorage.setItem(ACCOUNT_KEY, String(data.id));
      showAccountForm(false);
      $("#account-name").value = "";
      await loadAccounts();
      notify(`Opened ${data.name} with ${Money.format(data.usd, USD)} USD. You are trading on it now.`, "success");
    } catch (error) {
      if (error.code === "unauthorized") return showSignIn(error.message);
      say($("#account-message"), error.message, "error");
    } finally {
      $("#account-create").disabled = false;
    }
  });

  // ---- start ------------------------------------------------------------------------------
  async function startTerminal() {
    $("#signin").hidden = true;
    $("#terminal").hidden = false;
    $(`.interval[data-interval="${state.interval}"]`).setAttribute("aria-pressed", "true");
    selectAsset(state.asset);
    setSide(state.side);
    refreshLadder();
    loadMarkets();
    setInterval(() => { if (!document.hidden) { refreshLadder(); refreshPerpetual(); } }, 1000);
    state.streams.prices = openStream("prices", "/api/v1/stream/prices", {
      snapshot: (quotes) => Object.entries(quotes).forEach(([asset, quote]) => showQuote(asset, quote)),
      price: onPrice,
    }, () => { if (state.lastCandle === null) loadCandles(); });
    try {
      await loadAccounts();
    } catch (error) {
      if (error.code === "unauthorized") return showSignIn(error.message);
      notify(`Accounts unavailable: ${error.message}`, "error");
    }
  }

  async function boot() {
    const params = new URLSearchParams(location.search);
    if (params.get("signin") === "invalid") {
      history.replaceState(null, "", "/");
      return showSignIn("That sign-in link is invalid, used or expired. Ask for a new one.");
    }
    try {
      showBalance((await Api.get("/api/v1/balance/")).data);
    } catch (error) {
      return showSignIn(error.code === "unauthorized" ? "" : error.message);
    }
    startTerminal();
  }

  boot();
})();
