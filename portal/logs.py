"""Logging: a request id, one line per request, JSON lines on demand, and no secret ever logged.

Scrubbing happens where every record is born (a ``logging`` record factory), so it covers every
logger — ``msal``, ``urllib3``, ``werkzeug`` and ours — and every handler, including pytest's
``caplog``. :class:`ScrubFilter` does the same for handlers that receive records made elsewhere.
CR and LF in messages are escaped so user input cannot forge log lines (ASVS 5.0 16.4.1).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time

from flask import current_app, g, request

REDACTED = "[redacted]"

_SECRET_KEYS = (
    r"access_token|refresh_token|id_token|client_assertion|client_secret|code_verifier|"
    r"assertion|password|passwd|private_key|secret|code|token|session|csrf_token|"
    r"x-csrftoken|cookie|set-cookie|authorization"
)
_PATTERNS: list[tuple[re.Pattern, str]] = [
    # PEM blocks (private keys, certificates): the whole block.
    (
        re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|$)", re.S),
        "[redacted PEM]",
    ),
    # Authorization headers / bearer tokens.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    # JSON / Python-repr pairs: "refresh_token": "…"  or  'secret': '…'
    (
        re.compile(
            r"""(?i)(["'](?:""" + _SECRET_KEYS + r""")["']\s*:\s*)(["'])(?:\\.|(?!\2).)*\2"""
        ),
        r"\1\2" + REDACTED + r"\2",
    ),
    # Header style: Authorization: …  Cookie: …
    (
        re.compile(r"(?im)^((?:authorization|cookie|set-cookie|x-csrftoken)\s*:\s*).*$"),
        r"\1" + REDACTED,
    ),
    # Form / query style: code=…&client_assertion=…
    (re.compile(r"(?i)\b(" + _SECRET_KEYS + r")=([^&\s\"',;]+)"), r"\1=" + REDACTED),
    # Connect session and setup link tokens (portal/guests/tokens.py), e.g. in a request line.
    (re.compile(r"\b(cst_|slt_)[A-Za-z0-9_-]{20,}"), r"\1" + REDACTED),
    # JWTs anywhere (id tokens, access tokens, client assertions).
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
]


# Every pattern above needs one of these words to match: a text without any (most request lines)
# skips the substitutions. Kept a superset of the patterns' triggers (tested).
_MAY_HOLD_SECRET = re.compile(
    r"(?i)-----BEGIN|\b(?:bearer|basic)\b|eyJ|cst_|slt_|(?:" + _SECRET_KEYS + ")"
)


def scrub(text: str) -> str:
    """Remove anything that looks like a credential from ``text``."""
    if not _MAY_HOLD_SECRET.search(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def escape_controls(text: str) -> str:
    """Escape CR, LF and other control characters (no forged log lines)."""
    return re.sub(
        r"[\x00-\x08\x0a-\x1f\x7f]",
        lambda m: {"\n": "\\n", "\r": "\\r"}.get(m.group(), f"\\x{ord(m.group()):02x}"),
        text,
    )


def _clean_record(record: logging.LogRecord) -> logging.LogRecord:
    if getattr(record, "_portal_scrubbed", False):
        return record
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string must not lose the record
        message = f"{record.msg!r} {record.args!r}"
    record.msg = escape_controls(scrub(message))
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = scrub(record.exc_text)
        record.exc_info = None  # the scrubbed text is what gets printed
    record._portal_scrubbed = True
    return record


class ScrubFilter(logging.Filter):
    """Scrub secrets from every record passing through (also adds ``request_id``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _clean_record(record)
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or "-"
        return True


_previous_factory = None


def install_record_factory() -> None:
    """Scrub every record at creation (idempotent; process-wide)."""
    global _previous_factory
    if _previous_factory is not None:
        return
    _previous_factory = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = _previous_factory(*args, **kwargs)
        record.request_id = current_request_id() or "-"
        return _clean_record(record)

    logging.setLogRecordFactory(factory)


def current_request_id() -> str | None:
    try:
        return g.get("request_id")
    except RuntimeError:  # outside an app context
        return None


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging API
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        _clean_record(record)
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        for key in ("method", "path", "status", "duration_ms", "user_id", "remote_addr"):
            if hasattr(record, key):
                data[key] = getattr(record, key)
        if record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False)


_HANDLER_MARK = "_portal_handler"


def configure(app) -> None:
    """Install the scrubbing factory and one stderr handler on the root logger."""
    install_record_factory()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.addFilter(ScrubFilter())
    handler.setFormatter(JsonFormatter() if app.config["LOG_FORMAT"] == "json" else TextFormatter())
    root.addHandler(handler)
    level = logging.getLevelName(str(app.config.get("LOG_LEVEL", "INFO")).upper())
    if isinstance(level, int) and (root.level == logging.WARNING or root.level > level):
        root.setLevel(level)


request_log = logging.getLogger("portal.request")

_QUIET = "_portal_quiet_log"


def quiet(view):
    """Log this view's successful requests at DEBUG (a scrape every few seconds would drown
    the log); its failures keep their INFO line."""
    setattr(view, _QUIET, True)
    return view


def _is_quiet(status: int) -> bool:
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    return status < 400 and bool(getattr(view, _QUIET, False))


def _start_request():
    g.request_id = secrets.token_hex(8)
    g.request_started = time.perf_counter()


def _end_request(response):
    request_id = g.get("request_id", "-")
    response.headers["X-Request-ID"] = request_id
    duration_ms = round(
        (time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000, 1
    )
    from flask_login import current_user

    user_id = current_user.id if current_user and current_user.is_authenticated else None
    # The path only: query strings can carry codes and states.
    request_log.log(
        logging.DEBUG if _is_quiet(response.status_code) else logging.INFO,
        "%s %s %s %sms user=%s",
        request.method,
        request.path,
        response.status_code,
        duration_ms,
        user_id or "-",
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": duration_ms,
            "user_id": user_id,
            "remote_addr": request.remote_addr,
        },
    )
    return response


def init_app(app) -> None:
    configure(app)
    app.before_request(_start_request)
    app.after_request(_end_request)
