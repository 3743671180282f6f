"""The forecast error (domain.forecast.ForecastError) keeps its HTTP status, code, message and details, also
across a pickle (Serve handles and Ray tasks pickle it)."""
from __future__ import annotations

import pickle

from domain.forecast import ForecastError


def test_forecast_error_keeps_its_fields_and_survives_pickling():
    err = ForecastError(404, "unknown_gpu", "no GPU 'H900'", {"closest": ["H100", "H200"]})
    assert (err.status, err.code, err.message, err.details) == (404, "unknown_gpu", "no GPU 'H900'",
                                                              {"closest": ["H100", "H200"]})
    assert str(err) == "no GPU 'H900'"
    back = pickle.loads(pickle.dumps(err))
    assert (back.status, back.code, str(back), back.details) == (404, "unknown_gpu", "no GPU 'H900'",
                                                               {"closest": ["H100", "H200"]})
