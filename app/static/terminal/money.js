// Money on the page: integers in fixed decimals from the server, turned into text and back with
// string arithmetic (BigInt), never floats.
"use strict";

const Money = (() => {
  const GROUP = /\B(?=(\d{3})+(?!\d))/g;

  /** "12,345.67" from 1234567 units with 2 decimals; `signed` adds "+" to positive amounts. */
  function format(units, decimals, { signed = false } = {}) {
    if (units === null || units === undefined) return "–";
    let value = BigInt(units);
    const negative = value < 0n;
    if (negative) value = -value;
    let digits = value.toString().padStart(decimals + 1, "0");
    const whole = digits.slice(0, digits.length - decimals).replace(GROUP, ",");
    const fraction = decimals ? "." + digits.slice(digits.length - decimals) : "";
    const sign = negative ? "−" : signed && value > 0n ? "+" : "";
    return sign + whole + fraction;
  }

  /** Integer units from what a person typed ("1,234.5" with 2 decimals gives 123450); null if not a number. */
  function parse(text, decimals) {
    const cleaned = String(text).trim().replace(/,/g, "");
    const match = /^(\d*)(?:\.(\d*))?$/.exec(cleaned);
    if (!cleaned || !match || (!match[1] && !match[2])) return null;
    const fraction = (match[2] || "");
    if (fraction.length > decimals) return null;
    const units = BigInt((match[1] || "0") + fraction.padEnd(decimals, "0"));
    return units > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(units);
  }

  /** Basis points from a percentage typed as text ("1.25" gives 125). */
  function percentToBps(text) {
    return parse(text, 2);
  }

  /** A decimal string (a funding rate, "-0.0000125") as a signed percentage ("−0.00125%"). */
  function percent(rate) {
    const match = /^(-?)(\d*)\.?(\d*)$/.exec(String(rate));
    if (!match) return "–";
    const fraction = match[3];
    const whole = ((match[2] || "0") + fraction.slice(0, 2).padEnd(2, "0")).replace(/^0+(?=\d)/, "");
    const rest = fraction.slice(2).replace(/0+$/, "");
    return `${match[1] ? "−" : "+"}${whole}${rest ? "." + rest : ""}%`;
  }

  return { format, parse, percentToBps, percent };
})();
