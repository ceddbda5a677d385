"""Who is calling: the API key from ``Authorization: Bearer``, its scope, its rate limit.

Keys are deployment-wide: a key acts for every organization the host has named (by external
id), never for one organization only; what it may do is its scopes.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import limits
from flask import current_app, g, request

from portal import ratelimit, storage
from portal.api import keys
from portal.api.problems import ApiProblem
from portal.api.scopes import SCOPES

#: Requests per key (flask-limiter syntax); ``API_RATE_LIMIT`` in the configuration overrides.
#: Counted in the app's limiter storage (``RATELIMIT_STORAGE_URI``: per worker with memory://).
DEFAULT_RATE_LIMIT = "600 per minute"
#: ``last_used_at`` is written at most this often per key, not once per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)
REALM = 'Bearer realm="portal-api"'
_DUMMY_HASH = "0" * 64


def requires(scope: str):
    """The view needs a live key holding ``scope``; the key is ``g.api_key`` inside it."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            key = authenticate()
            charge(key)
            if scope not in key.scopes:
                raise ApiProblem(
                    "forbidden_scope",
                    f"This API key does not have the scope {scope}.",
                    headers={
                        "WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'
                    },
                )
            note_use(key)
            g.api_key = key
            return view(*args, **kwargs)

        return wrapped

    return decorator


def authenticate() -> storage.ApiKey:
    """The live key of this request (RFC 6750 section 2.1); 401 otherwise."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        detail = "Send an API key: Authorization: Bearer <key>."
        if current_app.config["SESSION_COOKIE_NAME"] in request.cookies:
            detail += " The API does not use the portal's sign-in cookie."
        raise ApiProblem("unauthorized", detail, headers={"WWW-Authenticate": REALM})
    key_id = keys.parse_key_id(token)
    record = storage.get_api_key(key_id) if key_id else None
    if record is None:
        keys.matches(_dummy(), token)  # the same work as for a known id: timing tells nothing
        ok = False
    else:
        ok = keys.matches(record, token)
    if record is None or not ok or record.revoked:
        raise ApiProblem(
            "unauthorized",
            "This API key is not valid (unknown, revoked or mistyped).",
            headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )
    return record


def _dummy() -> storage.ApiKey:
    return storage.ApiKey(0, "", "", _DUMMY_HASH, (), "", None, None)


def charge(key: storage.ApiKey) -> None:
    """Count the request against the key's limit; 429 with Retry-After when it is spent."""
    limiter = ratelimit.limiter_of(current_app)
    if not limiter.enabled:
        return
    item = limits.parse(current_app.config.get("API_RATE_LIMIT", DEFAULT_RATE_LIMIT))
    if limiter.limiter.hit(item, "api-key", key.key_id):
        return
    reset = limiter.limiter.get_window_stats(item, "api-key", key.key_id).reset_time
    wait = max(1, int(reset - datetime.now(UTC).timestamp()) + 1)
    raise ApiProblem(
        "rate_limited",
        f"This API key made too many requests; retry in {wait} s.",
        headers={"Retry-After": str(wait)},
    )


def note_use(key: storage.ApiKey) -> None:
    """Keep ``last_used_at`` within a minute of the truth without a write per request."""
    now = datetime.now(UTC)
    stale_before = (now - LAST_USED_RESOLUTION).isoformat(timespec="seconds")
    if key.last_used_at is not None and key.last_used_at >= stale_before:
        return
    storage.touch_api_key(key.key_id, now.isoformat(timespec="seconds"), stale_before)
