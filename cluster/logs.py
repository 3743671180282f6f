"""JSON logs with the request's trace id; values that look like secrets or emails never reach a log line."""
from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import datetime, timezone

trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)
span_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("span_id", default=None)

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_BEARER = re.compile(r"(?i)(bearer\s+|token[\"'=: ]+|password[\"'=: ]+|secret[\"'=: ]+)[^\s\"',}]+")
# API keys in URLs (GCP's Billing Catalog takes `?key=`), AWS signatures and session tokens
_URL_KEY = re.compile(r"(?i)([?&](?:api_?key|key|x-amz-signature|x-amz-security-token)=)[^&\s\"']+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def redact(text: str) -> str:
    text = _JWT.sub("[jwt]", text)
    text = _URL_KEY.sub(lambda m: m.group(1) + "[redacted]", text)
    text = _BEARER.sub(lambda m: m.group(1) + "[redacted]", text)
    return _EMAIL.sub("[email]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "trace_id": getattr(record, "trace_id", None) or trace_id_var.get(),
            "span_id": getattr(record, "span_id", None) or span_id_var.get(),
        }
        for k, v in record.__dict__.items():
            if k not in _RESERVED and k not in body and not k.startswith("_"):
                body[k] = redact(v) if isinstance(v, str) else v
        if record.exc_info:
            body["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(body, default=str)


def configure_logging(level: str = "INFO", stream=None) -> None:
    """Install the JSON formatter on our loggers (idempotent)."""
    # The process's real stderr: in throughput mode Serve replaces a replica's sys.stderr with a writer into
    # its own logger, which re-logs each line at INFO through a 1,000-record buffer, so a replica's error
    # lines (a 500's traceback included) never reached a file.
    handler = logging.StreamHandler(stream or sys.__stderr__ or sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("gpubroker",):
        lg = logging.getLogger(name)
        lg.handlers = [handler]
        lg.setLevel(level)
        lg.propagate = False
    # httpx logs every request URL at INFO, query string included (an API key there): warnings only
    logging.getLogger("httpx").setLevel(logging.WARNING)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"gpubroker.{name}")
