"""Sign in, second factor, re-authentication and sign out.

A sign-in is the password, then — for a user with an authenticator app — a TOTP or recovery
code; a user who must use a second factor (support, or an admin of an organization that
requires it) and has none enrols right after the password. Until the last step succeeds the
session only names the pending user (``PENDING``): flask-login has nobody signed in, so no
route treats them as authenticated. Failed passwords and failed codes share one throttle.
"""

from __future__ import annotations

import logging
import math
import time

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional

from portal import mfa, storage
from portal.access import login_required, mark_authenticated
from portal.next_page import safe_next
from portal.security import embeddable
from portal.services import caches

bp = Blueprint("auth", __name__)
log = logging.getLogger("portal.auth")


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    next = HiddenField()


class CodeForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired(), Length(max=64)])


class EnrolForm(FlaskForm):
    code = StringField("6-digit code from the app", validators=[DataRequired(), Length(max=64)])


class ReauthForm(FlaskForm):
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    code = StringField(
        "Code from your authenticator app, or a recovery code",
        validators=[Optional(), Length(max=64)],
    )
    next = HiddenField()


#: Session key of a sign-in whose password was right but whose second factor is pending.
PENDING = "pending_sign_in"
#: How long the second step may take after the password.
PENDING_SECONDS = 600


def hash_password(password: str) -> str:
    """Hash with the configured method (scrypt; tests may choose a cheaper one)."""
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def _dummy_hash() -> str:
    method = current_app.config["PASSWORD_HASH_METHOD"]
    known = caches().dummy_hashes
    if method not in known:
        known[method] = generate_password_hash("not a password", method=method)
    return known[method]


def client_address() -> str:
    """The client's address: behind ``TRUSTED_PROXY_HOPS`` proxies, ProxyFix has already put
    the address the nearest trusted proxy saw here; with no proxy configured, X-Forwarded-For
    is ignored (a client could otherwise pick any address)."""
    return request.remote_addr or "-"


def throttle_seconds(account: str, address: str) -> float:
    """How long this account must wait before another try from this address (0: now)."""
    config = current_app.config
    return storage.login_lockout_seconds(
        account,
        address,
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
    response = current_app.make_response((render_template(template, error=error, **context), 429))
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
        return render_template("auth/login.html", form=form)
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form)

    account = storage.normalize_email(form.email.data or "")
    address = client_address()
    wait = throttle_seconds(account, address)
    if wait:
        log.warning("sign-in refused while throttled: account %s", account)
        return locked_response("auth/login.html", wait, form=form)

    user = storage.get_user_by_email(account)
    ok = check_password_hash(
        user.password_hash if user else _dummy_hash(), form.password.data or ""
    )
    if user is not None and user.is_guest:
        ok = False  # a guest has no password: only their token or link signs them in
    if not (ok and user is not None):
        storage.record_login_attempt(account, address, False)
        log.info("failed sign-in for %s", account)
        wait = throttle_seconds(account, address)
        if wait:
            return locked_response("auth/login.html", wait, form=form)
        return render_template(
            "auth/login.html", form=form, error="The email or password is not right."
        )
    return _after_password(user, safe_next(form.next.data))


def mfa_required(user: storage.User) -> bool:
    """Support always; an admin when their organization requires it."""
    if user.is_support:
        return True
    org = storage.get_organization(user.org_id) if user.org_id is not None else None
    return bool(org and org.require_mfa)


def _after_password(user: storage.User, next_url: str | None):
    if user.has_mfa:
        return _begin_pending(user, next_url, "verify")
    if mfa_required(user):
        # A new secret for every attempt: a QR code left on an old page never enrols anything.
        storage.put_pending_totp_secret(user.id, mfa.new_secret())
        return _begin_pending(user, next_url, "enrol")
    _sign_in(user)
    return redirect(next_url or url_for("home.index"))


def _begin_pending(user: storage.User, next_url: str | None, step: str):
    session.clear()  # nothing of an earlier session survives, and nobody is signed in yet
    session[PENDING] = {
        "user": user.id,
        "epoch": user.session_epoch,
        "step": step,
        "at": time.time(),
        "next": next_url or "",
    }
    endpoint = "auth.second_factor" if step == "verify" else "auth.enrol"
    return redirect(url_for(endpoint))


def _pending(step: str) -> tuple[storage.User | None, str | None]:
    """The user whose password was right moments ago and who is at ``step``."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or pending.get("step") != step:
        return None, None
    started = pending.get("at")
    if not isinstance(started, (int, float)) or not 0 <= time.time() - started <= PENDING_SECONDS:
        return None, None
    user = storage.get_user(int(pending.get("user", 0)))
    if user is None or user.session_epoch != pending.get("epoch"):
        return None, None
    return user, safe_next(pending.get("next"))


def _sign_in(user: storage.User) -> None:
    """Every factor is right: the user is signed in, in a new session (and CSRF token)."""
    storage.record_login_attempt(user.email, client_address(), True)
    session.clear()
    login_user(user)
    session.permanent = True
    mark_authenticated(new_sign_in=True)
    storage.record_login(user.id)
    storage.record_audit("auth.login", actor=user, org_id=user.org_id)
    log.info("signed in: user %s", user.id)


def _start_again():
    flash("Your sign-in took too long or was interrupted. Please sign in again.", "error")
    return redirect(url_for("auth.login"))


def verify_second_factor(user: storage.User, code: str) -> bool:
    """A TOTP code of a step later than the last one accepted, or an unused recovery code
    (which is then spent)."""
    if mfa.looks_like_totp(code):
        secret = storage.get_totp_secret(user.id)
        step = mfa.matching_step(secret, code) if secret else None
        return step is not None and storage.accept_totp_step(user.id, step)
    for code_id, code_hash in storage.unused_recovery_codes(user.id):
        if mfa.recovery_code_matches(code_hash, code):
            if not storage.use_recovery_code(user.id, code_id):
                return False
            storage.record_audit("auth.recovery_code_used", actor=user, org_id=user.org_id)
            return True
    return False


def record_factor_failure(user: storage.User, template: str, error: str, **context):
    """A wrong code counts like a wrong password; the page again, or the pause when one is due."""
    address = client_address()
    storage.record_login_attempt(user.email, address, False)
    log.info("failed second factor for %s", user.email)
    wait = throttle_seconds(user.email, address)
    if wait:
        return locked_response(template, wait, **context)
    return render_template(template, error=error, **context)


@bp.route("/login/second-factor", methods=["GET", "POST"])
@embeddable
def second_factor():
    user, next_url = _pending("verify")
    if user is None:
        return _start_again()
    form = CodeForm()
    if request.method == "GET" or not form.validate_on_submit():
        return render_template("auth/second_factor.html", form=form)
    wait = throttle_seconds(user.email, client_address())
    if wait:
        return locked_response("auth/second_factor.html", wait, form=form)
    if not verify_second_factor(user, form.code.data or ""):
        return record_factor_failure(
            user,
            "auth/second_factor.html",
            "That code is not right. Enter the current code from your authenticator app, or "
            "one of your recovery codes.",
            form=form,
        )
    _sign_in(user)
    return redirect(next_url or url_for("home.index"))


#: The answer to a wrong first code: the usual cause is the phone's clock.
WRONG_ENROLMENT_CODE = (
    "That code is not right. Check that your phone's time is set automatically and "
    "enter the code your app shows now."
)


def enrolment_context(user: storage.User, secret: str, form: EnrolForm, action: str) -> dict:
    """What the enrolment page shows: the QR code and the same secret as text."""
    uri = mfa.provisioning_uri(secret, user.email)
    return {
        "form": form,
        "action": action,
        "qr": mfa.qr_data_uri(uri),
        "secret_text": mfa.grouped(secret),
        "account": user.email,
    }


def confirm_enrolment(user: storage.User, secret: str, code: str) -> list[str] | None:
    """Enrol ``secret`` if ``code`` proves the app has it; the new recovery codes (shown once)."""
    step = mfa.matching_step(secret, code)
    if step is None:
        return None
    codes = mfa.new_recovery_codes()
    method = current_app.config["PASSWORD_HASH_METHOD"]
    storage.enrol_totp(user.id, secret, step, [mfa.hash_recovery_code(c, method) for c in codes])
    storage.record_audit("auth.mfa_enrol", actor=user, org_id=user.org_id)
    log.info("authenticator app enrolled: user %s", user.id)
    return codes


@bp.route("/login/enrol", methods=["GET", "POST"])
@embeddable
def enrol():
    """Enrolment demanded at sign-in: the user is signed in only once their app works."""
    user, next_url = _pending("enrol")
    secret = storage.get_pending_totp_secret(user.id) if user else None
    if user is None or secret is None:
        return _start_again()
    form = EnrolForm()
    context = enrolment_context(user, secret, form, url_for("auth.enrol"))
    if request.method == "GET" or not form.validate_on_submit():
        return render_template("auth/enrol.html", required=True, **context)
    wait = throttle_seconds(user.email, client_address())
    if wait:
        return locked_response("auth/enrol.html", wait, required=True, **context)
    codes = confirm_enrolment(user, secret, form.code.data or "")
    if codes is None:
        return record_factor_failure(
            user,
            "auth/enrol.html",
            WRONG_ENROLMENT_CODE,
            required=True,
            **context,
        )
    _sign_in(user)
    return render_template(
        "auth/recovery_codes.html", codes=codes, continue_url=next_url or url_for("home.index")
    )


@bp.route("/reauth", methods=["GET", "POST"])
@login_required
@embeddable
def reauth():
    """Confirm the password (and second factor) before a sensitive action, then go back to the
    page it came from."""
    form = ReauthForm()
    user = current_user._get_current_object()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
    if request.method == "GET" or not form.validate_on_submit():
        return render_template("auth/reauth.html", form=form, with_code=user.has_mfa)
    context = {"form": form, "with_code": user.has_mfa}
    wait = throttle_seconds(user.email, client_address())
    if wait:
        return locked_response("auth/reauth.html", wait, **context)
    ok = check_password_hash(user.password_hash, form.password.data or "") and (
        not user.has_mfa or verify_second_factor(user, form.code.data or "")
    )
    if not ok:
        return record_factor_failure(
            user, "auth/reauth.html", "The password or code is not right.", **context
        )
    storage.record_login_attempt(user.email, client_address(), True)
    mark_authenticated(new_sign_in=False)
    storage.record_audit("auth.reauth", actor=user, org_id=user.org_id)
    return redirect(safe_next(form.next.data) or url_for("home.index"), code=303)


@bp.post("/logout")
@login_required
def logout():
    user = current_user._get_current_object()
    storage.end_sessions(user.id)
    storage.record_audit("auth.logout", actor=user, org_id=user.org_id)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
