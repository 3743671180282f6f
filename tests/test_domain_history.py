"""Price-history query rules (domain.history): naive times are UTC, span limits per bucket, keyset cursors and
grouping of bucket rows into series."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from domain.history import GpuHistoryQuery, OfferHistoryQuery, group_series, history_cursor
from domain.pagination import CursorError, encode_cursor

T = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def test_naive_times_are_read_as_utc_and_aware_ones_kept():
    q = OfferHistoryQuery(**{"from": "2026-05-01T10:00:00", "to": "2026-05-01T13:00:00+02:00"})
    assert q.from_ == datetime(2026, 5, 1, 10, 0, tzinfo=timezone.utc)
    assert q.to.utcoffset() == timedelta(hours=2)


def test_offer_history_range_must_be_ordered():
    with pytest.raises(ValidationError, match="`from` must be before `to`"):
        OfferHistoryQuery(**{"from": T, "to": T})
    assert OfferHistoryQuery(**{"from": T}).to is None


def test_gpu_history_defaults_to_thirty_days_or_a_year_ending_at_to():
    assert GpuHistoryQuery(gpu_type="H100", to=T).from_ == T - timedelta(days=30)
    assert GpuHistoryQuery(gpu_type="H100", to=T, bucket="week").from_ == T - timedelta(days=365)


def test_gpu_history_span_limit_per_bucket():
    assert GpuHistoryQuery(gpu_type="H100", to=T, **{"from": T - timedelta(days=400)}).from_ == T - timedelta(days=400)
    with pytest.raises(ValidationError, match="at most 400 days per request with bucket=day"):
        GpuHistoryQuery(gpu_type="H100", to=T, **{"from": T - timedelta(days=400, seconds=1)})
    with pytest.raises(ValidationError, match="at most 3710 days per request with bucket=week"):
        GpuHistoryQuery(gpu_type="H100", to=T, bucket="week", **{"from": T - timedelta(days=3711)})
    with pytest.raises(ValidationError, match="`from` must be before `to`"):
        GpuHistoryQuery(gpu_type="H100", to=T, **{"from": T})


def test_history_cursor_round_trips_the_keyset_position():
    cursor = history_cursor(T, 42)
    assert OfferHistoryQuery(cursor=cursor).position() == (T, 42)
    assert OfferHistoryQuery().position() is None


@pytest.mark.parametrize("position", [{"t": "yesterday", "id": 1}, {"t": T.isoformat(), "id": "x"},
                                      {"t": T.isoformat(), "id": None}, {"t": 5, "id": 1}])
def test_history_cursor_with_bad_values_is_refused(position):
    with pytest.raises(CursorError, match="^not a cursor issued by this route$"):
        OfferHistoryQuery(cursor=encode_cursor(position)).position()


def test_history_cursor_of_another_route_is_refused():
    with pytest.raises(CursorError):
        OfferHistoryQuery(cursor=encode_cursor({"offset": 100})).position()


def test_rows_group_into_one_series_per_provider_region_and_pricing_in_order():
    def row(provider, region, pricing, day, lo):
        return {"provider": provider, "region": region, "pricing": pricing, "bucket_start": T + timedelta(days=day),
                "min": lo, "median": lo + 1, "max": lo + 2, "samples": day + 1}

    rows = [row("aws", "us-east-1", "spot", 0, 1.0), row("aws", "us-east-1", "spot", 1, 2.0),
            row("aws", "us-east-1", "on_demand", 0, 3.0), row("aws", "eu-west-1", "on_demand", 0, 4.0),
            row("gcp", "eu-west-1", "on_demand", 0, 5.0)]
    series = group_series(rows)
    assert [(s.provider, s.region, s.pricing.value, len(s.points)) for s in series] == [
        ("aws", "us-east-1", "spot", 2), ("aws", "us-east-1", "on_demand", 1), ("aws", "eu-west-1", "on_demand", 1),
        ("gcp", "eu-west-1", "on_demand", 1)]
    p = series[0].points[1]
    assert (p.bucket_start, p.min, p.median, p.max, p.samples) == (T + timedelta(days=1), 2.0, 3.0, 4.0, 2)
    assert group_series([]) == []
