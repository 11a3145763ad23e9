"""Accounts, signed out: log in and out, first-run setup, signup, email verification, password reset."""

from __future__ import annotations

import math
from urllib.parse import unquote, urlsplit

from quart import Blueprint, g, redirect, render_template, request
from quart_schema import hide

from appliance.accounts import invites, setup
from appliance.accounts import users as accounts
from appliance.accounts.auth import SESSION_COOKIE, current_user, load_session
from appliance.accounts.sessions import end_session, start_session
from appliance.core.errors import HeraldError, NotFound, RateLimited, headers_of, status_of
from appliance.core.herald import Herald, current_herald
from appliance.core.mail import mail_configured
from appliance.core.netaddr import client_address

blueprint = Blueprint("accounts", __name__)


def _herald() -> Herald:
    return current_herald()


def _address() -> str:
    return client_address(request, _herald().settings.trusted_proxies)


def field_errors(exc: HeraldError) -> dict[str, str]:
    return {exc.extra.get("field", "form"): exc.message}


async def render_form(template: str, exc: HeraldError | None = None, status: int | None = None, **context):
    """A page with a form; an HeraldError becomes an error next to its field (and its status)."""
    html = await render_template(template, errors=field_errors(exc) if exc else {}, **context)
    if exc is None:
        return html, status or 200
    return html, status or status_of(exc), headers_of(exc)


def safe_next(target: str | None) -> str:
    """Only same-origin paths, so a login link cannot bounce users elsewhere.

    Browsers read a backslash as a slash, drop tabs and newlines, and resolve
    ``/\\host`` or ``/%5Chost`` after decoding in some places; so the value must be a
    plain absolute path: one leading ``/`` not followed by another, no backslash or
    control character anywhere (written or percent-encoded), no raw whitespace, and
    no scheme or host however it is read.
    """
    if not target or not target.startswith("/") or len(target) > 2000:
        return "/"
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in target):
        return "/"
    decoded = unquote(target)
    for text in (target, decoded):
        if "\\" in text or text.startswith("//") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def set_session_cookie(response, token: str) -> None:
    herald = _herald()
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=herald.settings.session_days * 86400,
        httponly=True,
        samesite="Lax",
        secure=herald.settings.secure_cookies,
        path="/",
    )


async def log_in(user, next_url: str, browser_time_zone: str | None = None):
    """Start a fresh session (a new id at every login, against session fixation).

    ``browser_time_zone``: the zone static/js/browser-zone.js put in the form, adopted while
    the user has chosen none.
    """
    herald = _herald()
    await accounts.adopt_browser_time_zone(user, browser_time_zone)
    await end_session(request.cookies.get(SESSION_COOKIE, ""))
    new = await start_session(user, clock=herald.clock, days=herald.settings.session_days,
                              user_agent=request.headers.get("User-Agent", ""))
    g.herald_session = new.session
    response = redirect(next_url)
    set_session_cookie(response, new.token)
    return response


async def _login_page(status: int = 200, headers=None, **context):
    context.setdefault("error", None)
    context.setdefault("email", "")
    context.setdefault("notice", None)
    signup_open = await invites.signup_mode(_herald()) == "open"
    html = await render_template("accounts/login.html", signup_open=signup_open, **context)
    return html, status, headers or {}


@blueprint.get("/login")
@hide
async def login_form():
    if await current_user() is not None:
        return redirect(safe_next(request.args.get("next")))
    notice = {"reset": "Your password was changed. Log in with the new one.",
              "deleted": "Your account was deleted.",
              "logout": "You are logged out."}.get(request.args.get("done", ""))
    return await _login_page(next=safe_next(request.args.get("next")), notice=notice)


@blueprint.post("/login")
@hide
async def login():
    form = await request.form
    email = form.get("email", "")
    next_url = safe_next(form.get("next"))
    try:
        user = await accounts.login(_herald(), email, form.get("password", ""), address=_address())
    except HeraldError as exc:
        message = exc.message
        if isinstance(exc, RateLimited) and "retry_after" in exc.extra:
            message = f"Too many failed logins; try again {wait_text(exc.extra['retry_after'])} or reset your password."
        return await _login_page(status_of(exc), headers_of(exc), next=next_url, email=email, error=message)
    if user is None:
        return await _login_page(400, next=next_url, email=email,
                                 error="The email address or password is not right.")
    return await log_in(user, next_url, form.get("browser_time_zone"))


def wait_text(seconds: int | float) -> str:
    """'in 45 seconds', 'in 15 minutes': whole minutes (rounded up) above 90 seconds."""
    seconds = max(1, math.ceil(seconds))
    if seconds <= 90:
        return f"in {seconds} second{'' if seconds == 1 else 's'}"
    minutes = math.ceil(seconds / 60)
    return f"in {minutes} minutes"


@blueprint.post("/logout")
@hide
async def logout():
    await load_session()
    await end_session(request.cookies.get(SESSION_COOKIE, ""))
    g.herald_session = None
    response = redirect("/login?done=logout")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- first run -------------------------------------------------------------------------


@blueprint.get("/setup/<token>")
@hide
async def setup_form(token: str):
    await setup.check_setup_token(token)
    return await render_form("accounts/setup.html", token=token, email="")


@blueprint.post("/setup/<token>")
@hide
async def setup_submit(token: str):
    form = await request.form
    try:
        user = await setup.create_first_admin(_herald(), token, form.get("email", ""), form.get("password", ""))
    except HeraldError as exc:
        if isinstance(exc, NotFound):
            raise
        return await render_form("accounts/setup.html", exc, token=token, email=form.get("email", ""))
    return await log_in(user, "/?welcome=setup", form.get("browser_time_zone"))


# --- signup ------------------------------------------------------------------------------


async def _signup_page(invite: str = "", email: str = "", exc: HeraldError | None = None, next_url: str = "/"):
    mode = await invites.signup_mode(_herald())
    closed_message = None
    if mode == "closed":
        closed_message = "Signup is closed on this Herald. Ask its admin for an account."
    elif mode == "invite" and not invite:
        closed_message = "Signup on this Herald needs an invite link from its admin."
    status = 403 if closed_message and exc is None else None
    return await render_form("accounts/signup.html", exc, status, invite=invite, email=email,
                             closed_message=closed_message, next=next_url)


@blueprint.get("/signup")
@hide
async def signup_form():
    next_url = safe_next(request.args.get("next"))
    if await current_user() is not None:
        return redirect(next_url)
    return await _signup_page(next_url=next_url)


@blueprint.get("/invite/<token>")
@hide
async def invite_form(token: str):
    await invites.find_invite(_herald(), token)
    return await _signup_page(invite=token)


@blueprint.post("/signup")
@hide
async def signup_submit():
    form = await request.form
    invite = form.get("invite", "")
    email = form.get("email", "")
    next_url = safe_next(form.get("next"))
    try:
        user = await invites.signup(_herald(), email, form.get("password", ""), invite_token=invite,
                                    address=_address())
    except HeraldError as exc:
        if exc.code in ("signup_closed", "invite_required", "invalid_invite"):
            raise
        return await _signup_page(invite, email, exc, next_url)
    # Someone sent here from elsewhere (the App Connection portal) goes back there.
    return await log_in(user, next_url if next_url != "/" else "/account?welcome=1", form.get("browser_time_zone"))


# --- email verification and password reset ----------------------------------------------


# A mailed link only shows what it would do: mail scanners and link previewers fetch every
# link in a mail, so the token is used only by the button's POST (which carries the CSRF token).
_NO_STORE = {"Cache-Control": "no-store"}


async def _link_not_valid(exc: HeraldError):
    html = await render_template("accounts/message.html", title="Link not valid", message=exc.message,
                                 error=True, link="/account", link_text="Account settings")
    return html, status_of(exc), {**headers_of(exc), **_NO_STORE}


@blueprint.get("/verify/<token>")
@hide
async def verify_form(token: str):
    try:
        record = await accounts.check_verification_link(_herald(), token)
    except HeraldError as exc:
        return await _link_not_valid(exc)
    html = await render_template("accounts/verify.html", token=token, email=record.email,
                                 new_address=record.purpose == accounts.PURPOSE_EMAIL)
    return html, 200, _NO_STORE


@blueprint.post("/verify/<token>")
@hide
async def verify(token: str):
    try:
        user = await accounts.verify_email(_herald(), token)
    except HeraldError as exc:
        return await _link_not_valid(exc)
    html = await render_template("accounts/message.html", title="Address confirmed",
                                 message=f"{user.email} is confirmed. Thank you.", error=False,
                                 link="/", link_text="Go to Herald")
    return html, 200, _NO_STORE


@blueprint.get("/reset")
@hide
async def forgot_form():
    return await render_form("accounts/forgot.html", email="", sent=False)


@blueprint.post("/reset")
@hide
async def forgot_submit():
    form = await request.form
    email = form.get("email", "")
    try:
        await accounts.request_password_reset(_herald(), email, address=_address())
    except HeraldError as exc:
        return await render_form("accounts/forgot.html", exc, email=email, sent=False)
    return await render_form("accounts/forgot.html", email=accounts.normalise_email(email), sent=True,
                             mail_configured=await mail_configured(_herald()))


@blueprint.get("/reset/<token>")
@hide
async def reset_form(token: str):
    await accounts.find_email_token(token, (accounts.PURPOSE_RESET,), clock=_herald().clock)
    return await render_form("accounts/reset.html", token=token)


@blueprint.post("/reset/<token>")
@hide
async def reset_submit(token: str):
    form = await request.form
    try:
        await accounts.reset_password(_herald(), token, form.get("password", ""))
    except HeraldError as exc:
        if exc.code == "invalid_token":
            raise
        return await render_form("accounts/reset.html", exc, token=token)
    response = redirect("/login?done=reset")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
