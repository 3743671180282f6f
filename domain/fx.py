"""Currency conversion for budgets a user states in another currency (all offer prices are USD).

Rates are approximate mid-2025 reference rates (USD per unit); a deployment may override them with the
`chat_fx_usd` setting. Every conversion is reported to the user as an assumption, with the rate used.
"""
from __future__ import annotations

from typing import Mapping

USD_PER_UNIT: dict[str, float] = {
    "USD": 1.0, "EUR": 1.17, "GBP": 1.37, "CHF": 1.25, "JPY": 0.0069, "CAD": 0.73, "AUD": 0.66,
    "INR": 0.0117, "CNY": 0.14, "SEK": 0.105, "NOK": 0.099, "DKK": 0.157, "PLN": 0.275, "SGD": 0.785,
    "KRW": 0.00073, "BRL": 0.18,
}
# How people write them: symbols and words, lower-case.
CURRENCY_WORDS: dict[str, str] = {
    "$": "USD", "us$": "USD", "usd": "USD", "dollar": "USD", "dollars": "USD", "bucks": "USD",
    "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "£": "GBP", "gbp": "GBP", "pound": "GBP", "pounds": "GBP", "quid": "GBP",
    "chf": "CHF", "franc": "CHF", "francs": "CHF",
    "¥": "JPY", "jpy": "JPY", "yen": "JPY",
    "cad": "CAD", "c$": "CAD", "aud": "AUD", "a$": "AUD",
    "₹": "INR", "inr": "INR", "rupees": "INR", "cny": "CNY", "rmb": "CNY", "yuan": "CNY",
    "sek": "SEK", "nok": "NOK", "dkk": "DKK", "pln": "PLN", "zloty": "PLN", "sgd": "SGD", "s$": "SGD",
    "krw": "KRW", "won": "KRW", "brl": "BRL", "r$": "BRL", "reais": "BRL",
}


class UnknownCurrency(ValueError):
    """No rate for this currency code."""


def to_usd(amount: float, currency: str, rates: Mapping[str, float] | None = None) -> float:
    """`amount` of `currency` in USD, rounded to the cent (4 decimals below 1 USD)."""
    table = {**USD_PER_UNIT, **(rates or {})}
    code = currency.upper()
    if code not in table:
        raise UnknownCurrency(f"no exchange rate for {currency!r}")
    usd = amount * table[code]
    return round(usd, 2) if usd >= 1 else round(usd, 4)
