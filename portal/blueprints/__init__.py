"""Blueprints: one module, one ``bp``. Modules that do not exist yet are skipped."""

from __future__ import annotations

import importlib

BLUEPRINTS = ("auth", "home", "status", "support", "onboarding", "oauth", "account")


def register(app) -> None:
    """Register every blueprint module of :data:`BLUEPRINTS` that is present."""
    for name in BLUEPRINTS:
        try:
            module = importlib.import_module(f"portal.blueprints.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"portal.blueprints.{name}":
                raise
            continue
        app.register_blueprint(module.bp)
