"""The forecast chart: history, forecast and its 80 %/95 % bands as a PNG (matplotlib, headless)."""
from __future__ import annotations

import io
from datetime import date, timedelta

from domain.forecast import ForecastResponse

__all__ = ["render_png"]


def render_png(resp: ForecastResponse, history_dates: list[date], history: list[float]) -> bytes:
    """One PNG: the last months of daily prices, then the forecast path with its bands."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.2), dpi=100)
    ax = fig.add_subplot()
    if history:
        xs, ys, gaps = [], [], 0
        for i, (d0, y) in enumerate(zip(history_dates, history)):
            if i and (d0 - history_dates[i - 1]).days > 1:   # a stretch nobody watched: shaded, no line across it
                xs.append(history_dates[i - 1] + timedelta(days=1))
                ys.append(float("nan"))
                ax.axvspan(history_dates[i - 1] + timedelta(days=1), d0, color="#999999", alpha=0.15,
                           label=None if gaps else "no price recorded (left out of the series)")
                gaps += 1
            xs.append(d0)
            ys.append(y)
        ax.step(xs, ys, where="post", color="#333333", lw=1.4, label="price history (daily as-of)")
    d = [p.date for p in resp.series]
    ax.fill_between(d, [p.lo95 for p in resp.series], [p.hi95 for p in resp.series], color="#9ecae1", alpha=0.5,
                    label="95 % interval", step="post")
    ax.fill_between(d, [p.lo80 for p in resp.series], [p.hi80 for p in resp.series], color="#4292c6", alpha=0.5,
                    label="80 % interval", step="post")
    ax.step(d, [p.price for p in resp.series], where="post", color="#08306b", lw=1.8, label=f"forecast ({resp.model})")
    ax.set_title(f"{resp.gpu_type} · {resp.provider} {resp.region} · {resp.pricing} · {resp.instance}", fontsize=10)
    ax.set_ylabel(f"{resp.currency} per hour")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
