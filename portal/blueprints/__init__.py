"""Blueprints, one per feature, each with its templates in ``templates/<blueprint>/``:
sign-in (``auth``) and its security settings (``account``), the home page, the connection page
(``connection``), the customer-owned setup (``wizard``, ``certificates``, ``consent``), Link
Account for service-provider connections (``link``), the support dashboard and the Prometheus
endpoint (``metrics``)."""

from __future__ import annotations

from flask import Flask

from portal.blueprints import (
    account,
    auth,
    certificates,
    connection,
    consent,
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
    support,
    metrics,
)


def register(app: Flask) -> None:
    for module in BLUEPRINTS:
        app.register_blueprint(module.bp)
