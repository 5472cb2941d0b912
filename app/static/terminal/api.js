// The API as the page uses it: JSON over fetch with the session cookie (and its CSRF header for
// requests that change state), every error of the contract turned into a sentence.
"use strict";

const Api = (() => {
  const MESSAGES = {
    insufficient_balance: "Not enough free USD for this margin.",
    price_unavailable: "No fresh price right now, so nothing was traded. Try again in a moment.",
    slippage_exceeded: "The price moved beyond your slippage limit, so nothing was traded.",
    rate_limited: "Too many requests. Wait a moment and try again.",
    unauthorized: "You are signed out. Sign in again to continue.",
    already_closed: "This position is already closed.",
    not_open: "This order is not open yet.",
    not_found: "This order no longer exists.",
    idempotency_mismatch: "This request was already sent with different details.",
    unavailable: "The service is briefly unavailable. Try again in a moment.",
    too_large: "The request is too large.",
    account_archived: "This account is archived: it takes no new orders.",
    too_many_accounts: "You have as many accounts as allowed; archive one you no longer use.",
    name_taken: "You have an account with that name already.",
    internal: "Something went wrong on our side. Try again.",
  };

  class ApiError extends Error {
    constructor(code, message, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrf_access_token=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function describe(body) {
    if (body.error === "validation" && body.errors) {
      const fields = Object.values(body.errors).flatMap((location) => Object.entries(location));
      if (fields.length) {
        return fields.map(([field, problems]) => `${field}: ${[].concat(problems).join(" ")}`).join("; ");
      }
    }
    return MESSAGES[body.error] || body.message || "The request failed.";
  }

  let account = null;  // the paper account every request acts on (X-Account-Id); null: the main one

  async function request(method, path, body, extraHeaders = {}) {
    const headers = { Accept: "application/json", ...extraHeaders };
    if (account !== null) headers["X-Account-Id"] = String(account);
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-TOKEN"] = csrfToken();
    let response;
    try {
      response = await fetch(path, {
        method, headers, credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (networkError) {
      throw new ApiError("network", "Cannot reach the server. Check your connection; the page retries by itself.", 0);
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(data.error || "internal", describe(data), response.status);
    return { status: response.status, data };
  }

  return {
    ApiError,
    get: (path) => request("GET", path),
    setAccount: (id) => { account = id; },
    post: (path, body, headers) => request("POST", path, body === undefined ? {} : body, headers),
    delete: (path) => request("DELETE", path),
  };
})();
