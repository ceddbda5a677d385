"""Blueprints, one per feature, each with its templates in ``templates/<blueprint>/``:
sign-in (``auth``) and its security settings (``account``), the home page, the connection page
(``connection``), the customer-owned setup (``wizard``, ``certificates``, ``consent``), Link
Account for service-provider connections (``link``), guest access (``guests``: the embedded
frame, setup links), the support dashboard, the Prometheus
endpoint (``metrics``) and the host API (``portal.api``, its own package: JSON under /api/v1)."""

from __future__ import annotations

from flask import Flask

from portal import api
from portal.blueprints import (
    account,
    auth,
    certificates,
    connection,
    consent,
    guests,
    home,
    link,
    metrics,
    support,
    wizard,
)

BLUEPRINTS = (
    auth,
    account,
    home,
    connection,
    wizard,
    certificates,
    consent,
    link,
    guests,
    support,
    metrics,
    api,
)


def register(app: Flask) -> None:
    for module in BLUEPRINTS:
        app.register_blueprint(module.bp)
