"""Accounts: log in and out. (Signup, verification, reset and tokens build on this.)"""

from __future__ import annotations

from urllib.parse import urlsplit

from quart import Blueprint, current_app, g, redirect, render_template, request

from appliance.auth import SESSION_COOKIE, current_user, load_session
from appliance.services.accounts import authenticate
from appliance.services.sessions import end_session, start_session

blueprint = Blueprint("accounts", __name__)


def safe_next(target: str | None) -> str:
    """Only same-site relative paths, so a login link cannot bounce users elsewhere."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def set_session_cookie(response, token: str) -> None:
    herald = current_app.extensions["herald"]
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=herald.settings.session_days * 86400,
        httponly=True,
        samesite="Lax",
        secure=herald.settings.secure_cookies,
        path="/",
    )


@blueprint.get("/login")
async def login_form():
    if await current_user() is not None:
        return redirect(safe_next(request.args.get("next")))
    return await render_template("accounts/login.html", next=safe_next(request.args.get("next")),
                                 error=None, email="")


@blueprint.post("/login")
async def login():
    herald = current_app.extensions["herald"]
    form = await request.form
    email = form.get("email", "")
    next_url = safe_next(form.get("next"))
    user = await authenticate(email, form.get("password", ""))
    if user is None:
        html = await render_template("accounts/login.html", next=next_url, email=email,
                                     error="The email address or password is not right.")
        return html, 400
    new = await start_session(user, clock=herald.clock, days=herald.settings.session_days,
                              user_agent=request.headers.get("User-Agent", ""))
    response = redirect(next_url)
    set_session_cookie(response, new.token)
    return response


@blueprint.post("/logout")
async def logout():
    await load_session()
    await end_session(request.cookies.get(SESSION_COOKIE, ""))
    g.herald_session = None
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
