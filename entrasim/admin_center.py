"""The HTML "admin center" (placeholder until the full pages land)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin_center", __name__, url_prefix="/_sim", static_folder="static",
               static_url_path="/static", template_folder="templates")
