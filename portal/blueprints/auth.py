"""Sign in and sign out (flask-login, scrypt hashes, failed sign-ins limited in SQLite)."""

from __future__ import annotations

import logging
import math
from urllib.parse import unquote, urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, Length

from portal import store
from portal.access import login_required, mark_authenticated
from portal.security import embeddable

bp = Blueprint("auth", __name__)
log = logging.getLogger("portal.auth")

_dummy_hashes: dict[str, str] = {}


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    next = HiddenField()


def hash_password(password: str) -> str:
    """Hash with the configured method (scrypt; tests may choose a cheaper one)."""
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def _dummy_hash() -> str:
    method = current_app.config["PASSWORD_HASH_METHOD"]
    if method not in _dummy_hashes:
        _dummy_hashes[method] = generate_password_hash("not a password", method=method)
    return _dummy_hashes[method]


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path of this application, else None (no open redirects)."""
    if not target or len(target) > 2048:
        return None
    candidates = [target]
    for _ in range(3):  # also judge encoded variants such as %2F%2Fevil.example
        candidates.append(unquote(candidates[-1]))
    for candidate in candidates:
        if any(ord(ch) < 32 or ch == "\\" or ch == "\x7f" for ch in candidate):
            return None
        if not candidate.startswith("/") or candidate.startswith("//"):
            return None
        parts = urlsplit(candidate)
        if parts.scheme or parts.netloc:
            return None
    adapter = current_app.url_map.bind("localhost", url_scheme="http")
    try:
        adapter.match(urlsplit(target).path, method="GET")
    except RequestRedirect:
        pass
    except HTTPException:
        return None
    return target


def client_address() -> str:
    """The client's address: behind ``TRUSTED_PROXY_HOPS`` proxies, ProxyFix has already put
    the address the nearest trusted proxy saw here; with no proxy configured, X-Forwarded-For
    is ignored (a client could otherwise pick any address)."""
    return request.remote_addr or "-"


def throttle_seconds(account: str, address: str) -> float:
    """How long this account must wait before another try from this address (0: now)."""
    config = current_app.config
    return store.login_lockout_seconds(
        account, address,
        free_failures=config["LOGIN_FREE_FAILURES"],
        first_delay=config["LOGIN_DELAY_SECONDS"],
        max_delay=config["LOGIN_MAX_DELAY_SECONDS"],
        max_per_address=config["LOGIN_MAX_FAILURES_PER_ADDRESS"],
        window=config["LOGIN_WINDOW_SECONDS"],
    )


def _wait_words(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second" + ("" if seconds == 1 else "s")
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute" + ("" if minutes == 1 else "s")


def locked_response(template: str, seconds: float, **context):
    """429 with the page asking to wait, and ``Retry-After``."""
    seconds = max(1, math.ceil(seconds))
    error = f"Too many failed sign-ins. Try again in {_wait_words(seconds)}."
    response = current_app.make_response(
        (render_template(template, error=error, **context), 429))
    response.headers["Retry-After"] = str(seconds)
    return response


@bp.route("/login", methods=["GET", "POST"])
@embeddable
def login():
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
        if current_user.is_authenticated:
            return redirect(form.next.data or url_for("home.index"))
        return render_template("pages/login.html", form=form)
    if not form.validate_on_submit():
        return render_template("pages/login.html", form=form)

    account = store.normalize_email(form.email.data)
    address = client_address()
    wait = throttle_seconds(account, address)
    if wait:
        log.warning("sign-in refused while throttled: account %s", account)
        return locked_response("pages/login.html", wait, form=form)

    user = store.get_user_by_email(account)
    ok = check_password_hash(user.password_hash if user else _dummy_hash(), form.password.data)
    ok = ok and user is not None
    store.record_login_attempt(account, address, ok)
    if not ok:
        log.info("failed sign-in for %s", account)
        wait = throttle_seconds(account, address)
        if wait:
            return locked_response("pages/login.html", wait, form=form)
        return render_template("pages/login.html", form=form,
                               error="The email or password is not right.")

    session.clear()  # a fresh session (and CSRF token) after authentication
    login_user(user)
    session.permanent = True
    mark_authenticated(new_sign_in=True)
    store.record_login(user.id)
    store.record_audit("auth.login", actor=user, org_id=user.org_id)
    log.info("signed in: user %s", user.id)
    return redirect(safe_next(form.next.data) or url_for("home.index"))


@bp.post("/logout")
@login_required
def logout():
    user = current_user._get_current_object()
    store.end_sessions(user.id)
    store.record_audit("auth.logout", actor=user, org_id=user.org_id)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
