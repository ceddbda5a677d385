"""What a keep-alive run needs besides the database: our multi-tenant app (read by the one
reader of its settings, ``portal.connections.service_provider``) and the policy knobs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from portal.connections import service_provider
from portal.connections.keepalive.rules import DEFAULT_IDLE, LEASE_SECONDS
from portal.entra.client import DELEGATED_SCOPE_NAMES, Credential


class KeepAliveConfigError(RuntimeError):
    """The service provider application is not configured (an operator problem)."""


@dataclass(frozen=True)
class Settings:
    """What a run needs besides the database: our multi-tenant app and the policy knobs."""

    client_id: str
    credential: Credential = field(repr=False)
    idle: timedelta = DEFAULT_IDLE
    lease_seconds: float = LEASE_SECONDS
    #: The delegated scopes a connection must hold (the product's plus ``SP_EXTRA_SCOPES``):
    #: the check each refresh is reports the others missing.
    required_scopes: tuple[str, ...] = DELEGATED_SCOPE_NAMES


def settings_from_config(
    config: Mapping[str, Any], instance_path: str | None = None, *, idle_hours: float | None = None
) -> Settings:
    """Settings from the app config: our app as the one reader of its settings reads it for Link
    Account too (``portal.connections.service_provider``: the same client id, lower-cased, and
    the same credential), plus ``REFRESH_IDLE_HOURS``; ``idle_hours`` (the CLI option) wins.
    Raises :class:`KeepAliveConfigError` naming the setting to fix (never its value)."""
    app = service_provider.read_settings(config, instance_path or "")
    problems = service_provider.app_problems(app)
    if problems or app.client_id is None or app.credential is None:
        raise KeepAliveConfigError(" ".join(problems) or "service provider app not configured")
    hours = idle_hours if idle_hours is not None else config.get("REFRESH_IDLE_HOURS", 24)
    try:
        idle = timedelta(hours=float(hours))
    except (TypeError, ValueError):
        raise KeepAliveConfigError("REFRESH_IDLE_HOURS must be a number of hours") from None
    return Settings(app.client_id, app.credential, idle=idle, required_scopes=app.required_scopes)
