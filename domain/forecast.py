"""The price-forecast contract: what `POST /predict` (and the `Forecast` deployment's handle) takes and answers.

One model family for the API, the Serve handle (chat asks for a cost forecast through it) and the CLI.
Prices are USD per hour of the whole instance (`gpu_count` GPUs); `hours` is the workload's running time.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ForecastRequest", "ForecastError", "ForecastPoint", "BacktestScore", "Alternative", "ForecastResponse",
           "MAX_HORIZON_DAYS", "PERSISTENCE"]

MAX_HORIZON_DAYS = 30
PERSISTENCE = "persistence"
Pricing = Literal["on_demand", "spot", "interruptible"]


class ForecastRequest(BaseModel):
    """A workload to price: which GPU (a filter as in GET /providers), where, how many, for how long."""
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    gpu_type: str = Field(..., min_length=1, max_length=100, description="GPU filter as in GET /providers ('H100', 'A100 80GB')")
    region: str | None = Field(None, min_length=1, max_length=100, description="provider region (e.g. us-central1)")
    provider: str | None = Field(None, min_length=1, max_length=64, description="provider id (e.g. gcp)")
    pricing: Pricing | None = Field(None, description="on_demand, spot or interruptible; any when unset")
    gpu_count: float | None = Field(None, gt=0, le=1024, description="GPUs per instance; the price scales per GPU when no instance has this count")
    hours: float | None = Field(None, gt=0, le=24 * 366, description="hours of use for total_for_hours (default: the whole horizon, 24 h a day)")
    horizon_days: int = Field(MAX_HORIZON_DAYS, ge=1, le=MAX_HORIZON_DAYS, description="days to forecast (1..30)")

    @field_validator("pricing", mode="before")
    @classmethod
    def _pricing(cls, v: object) -> object:
        # the evaluation CSVs spell it 'ondemand'
        return "on_demand" if isinstance(v, str) and v.strip().lower() in ("ondemand", "on-demand") else v


class ForecastPoint(BaseModel):
    """One day of the forecast: the price per hour in effect that day with 80 % and 95 % intervals."""
    date: date
    price: float
    lo80: float
    hi80: float
    lo95: float
    hi95: float


class BacktestScore(BaseModel):
    """Rolling-origin backtest of the model that answers, against persistence on the same windows (MAPE in %)."""
    mape: float | None = None
    coverage80: float | None = Field(None, description="share of backtest days inside the 80 % interval")
    baseline_mape: float | None = Field(None, description="persistence MAPE on the same windows")


class Alternative(BaseModel):
    """The same GPU elsewhere: the forecast mean hourly price of another matching series."""
    provider: str
    region: str
    pricing: str
    hourly: float


_RESPONSE_EXAMPLE = {'gpu_type': 'A100-40GB-SXM', 'provider': 'gcp', 'region': 'us-central1', 'pricing': 'spot', 'instance': 'a2-highgpu-1g (1x A100-40GB-SXM)', 'gpu_count': 1.0, 'horizon_days': 2, 'hours': 100.0, 'series': [{'date': '2026-12-02', 'price': 1.659445, 'lo80': 1.659445, 'hi80': 1.659445, 'lo95': 1.659445, 'hi95': 1.659445}, {'date': '2026-12-03', 'price': 1.659445, 'lo80': 1.659445, 'hi80': 1.659445, 'lo95': 1.659445, 'hi95': 1.659445}], 'hourly': 1.659445, 'daily': 39.82668, 'total_for_hours': 165.9445, 'ci_low': 165.9445, 'ci_high': 165.9445, 'currency': 'USD', 'model': 'persistence', 'interval_method': 'split-conformal on absolute relative residuals of the rolling-origin backtest, pooled per price type, activity class and horizon day; persistence: empirical j-day changes', 'trained_at': '2026-12-01T15:47:46.749855Z', 'model_version': '20261201T154746751840Z', 'as_of': '2026-12-01', 'history_points': 8, 'backtest': {'mape': 0.0, 'coverage80': 1.0, 'baseline_mape': 0.0}, 'alternatives': [{'provider': 'gcp', 'region': 'us-central1', 'pricing': 'spot', 'hourly': 2.326426}], 'warning': None}


class ForecastResponse(BaseModel):
    """The forecast of the cheapest matching series, with the cost of the workload and the spread elsewhere."""
    model_config = ConfigDict(json_schema_extra={"examples": [_RESPONSE_EXAMPLE]})
    gpu_type: str = Field(..., description="canonical GPU model of the series that answers")
    provider: str
    region: str
    pricing: str
    instance: str = Field(..., description="the offer (instance type) whose price history is forecast")
    gpu_count: float
    horizon_days: int
    hours: float
    series: list[ForecastPoint]
    hourly: float = Field(..., description="mean forecast price per hour over the horizon")
    daily: float = Field(..., description="hourly x 24")
    total_for_hours: float = Field(..., description="hourly x hours")
    ci_low: float = Field(..., description="lower 80 % bound of total_for_hours")
    ci_high: float = Field(..., description="upper 80 % bound of total_for_hours")
    currency: str = "USD"
    model: str = Field(..., description="model that answers; 'persistence' when nothing beat it or no model is trained yet")
    interval_method: str = Field(..., description="how the bands were made (split-conformal on backtest residuals, or empirical)")
    trained_at: datetime | None = Field(None, description="when the model version was trained; null before any training")
    model_version: str | None = None
    as_of: date = Field(..., description="last day of the price history the forecast starts from")
    history_points: int = Field(..., description="recorded prices of this series")
    backtest: BacktestScore
    alternatives: list[Alternative]
    warning: str | None = Field(None, description="why the answer is a baseline (no trained model, too little history, ...)")


class ForecastError(Exception):
    """A forecast cannot be answered: unknown GPU/region/provider (404, with the closest known names in
    `details`), or no forecast service yet (503). `status`/`code` are the HTTP error's."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details

    def __reduce__(self):  # crosses Serve handles and Ray task boundaries intact
        return (ForecastError, (self.status, self.code, self.message, self.details))
