"""The signed-in user's own sign-in security: turn two-step sign-in on, or off when allowed.

Enrolment works like the one demanded at sign-in (``auth``): a pending secret in the vault, a
QR code, a code proving the app has it, recovery codes shown once. Turning it on or off needs
a recent password entry (``fresh_auth_required``): someone at an unattended browser must not
be able to remove the second factor, or bind their own phone to the account.
"""

from __future__ import annotations

import logging

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal import mfa, storage
from portal.access import fresh_auth_required, login_required
from portal.blueprints.auth import (
    WRONG_ENROLMENT_CODE,
    EnrolForm,
    confirm_enrolment,
    enrolment_context,
    mfa_required,
    record_factor_failure,
)
from portal.security import embeddable

bp = Blueprint("account", __name__, url_prefix="/account")
log = logging.getLogger("portal.account")


def _me() -> storage.User:
    return current_user._get_current_object()


@bp.get("/security")
@login_required
@embeddable
def security():
    user = _me()
    return render_template(
        "account/security.html",
        required=mfa_required(user),
        recovery_left=len(storage.unused_recovery_codes(user.id)),
    )


@bp.post("/security/totp")
@login_required
@fresh_auth_required
def start_totp():
    """Begin enrolment: a new pending secret (a QR code left open elsewhere enrols nothing)."""
    user = _me()
    if user.has_mfa:
        return redirect(url_for("account.security"))
    storage.put_pending_totp_secret(user.id, mfa.new_secret())
    return redirect(url_for("account.enrol_totp"), code=303)


@bp.route("/security/totp/enrol", methods=["GET", "POST"])
@login_required
@embeddable
def enrol_totp():
    user = _me()
    secret = None if user.has_mfa else storage.get_pending_totp_secret(user.id)
    if secret is None:
        return redirect(url_for("account.security"))
    form = EnrolForm()
    context = enrolment_context(user, secret, form, url_for("account.enrol_totp"))
    context["cancel_url"] = url_for("account.security")
    if request.method == "GET" or not form.validate_on_submit():
        return render_template("auth/enrol.html", **context)
    codes = confirm_enrolment(user, secret, form.code.data or "")
    if codes is None:
        return record_factor_failure(
            user,
            "auth/enrol.html",
            WRONG_ENROLMENT_CODE,
            **context,
        )
    return render_template(
        "auth/recovery_codes.html", codes=codes, continue_url=url_for("account.security")
    )


@bp.post("/security/totp/disable")
@login_required
@fresh_auth_required
def disable_totp():
    user = _me()
    if mfa_required(user):
        flash("Your account must use two-step sign-in: it cannot be turned off.", "error")
        return redirect(url_for("account.security"), code=303)
    if user.has_mfa:
        storage.remove_mfa(user.id)
        storage.record_audit("auth.mfa_disable", actor=user, org_id=user.org_id)
        log.info("two-step sign-in turned off: user %s", user.id)
        flash("Two-step sign-in is off. You sign in with your password only.", "success")
    return redirect(url_for("account.security"), code=303)
