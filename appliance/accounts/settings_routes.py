"""Account settings for the signed-in user (/account), personal access tokens (also as JSON), /api/v1/me."""

from __future__ import annotations

from pydantic import BaseModel, Field
from quart import Blueprint, g, redirect, render_template, request
from quart_schema import document_request, hide, security_scheme, tag

from appliance.accounts import tokens
from appliance.accounts import users as accounts
from appliance.accounts.auth import (
    SESSION_COOKIE,
    load_session,
    require_bearer_or_session,
    require_user,
)
from appliance.accounts.sessions import end_session
from appliance.core.errors import HeraldError, Unauthenticated, headers_of, status_of
from appliance.core.herald import Herald, current_herald
from appliance.core.jsonbody import read_model
from appliance.core.mail import mail_configured
from appliance.core.netaddr import client_address

blueprint = Blueprint("account", __name__)

# Which input shows a service error, per form on the page (service field -> input id).
_FIELDS = {
    "email": {"email": "new_email", "current_password": "email_password"},
    "password": {"current_password": "current_password", "password": "new_password"},
    "time_zone": {"time_zone": "time_zone"},
    "token": {"name": "token_name", "scopes": "token_scopes"},
    "delete": {"current_password": "delete_password"},
}


def _herald() -> Herald:
    return current_herald()


async def _page(user, *, form: str = "", exc: HeraldError | None = None, status: int = 200, **context):
    herald = _herald()
    errors: dict[str, str] = {}
    if exc is not None:
        name = _FIELDS.get(form, {}).get(exc.extra.get("field", ""), f"{form}_form")
        errors[name] = exc.message
        status = status_of(exc)
    context.setdefault("notice", None)
    html = await render_template(
        "accounts/account.html",
        user=user,
        errors=errors,
        tokens=await tokens.personal_tokens(user),
        pending_email=await accounts.pending_email(user, clock=herald.clock),
        mail_configured=await mail_configured(herald),
        time_zones=accounts.time_zone_names(),
        token_scopes=tokens.SCOPES,
        **context,
    )
    return html, status, (headers_of(exc) if exc else {})


_NOTICES = {
    "welcome": "Welcome to Herald. We mailed you a link to confirm your email address.",
    "verify": "A new confirmation link is on its way.",
    "email": "We mailed a confirmation link to the new address; your address changes when you open it.",
    "password": "Your password was changed. Your other sessions were logged out.",
    "password_tokens": "Your password was changed. Your other sessions were logged out and your "
                       "personal access tokens were revoked; make new ones for the scripts you still use.",
    "time_zone": "Your time zone was saved.",
    "revoked": "The token was revoked.",
}


@blueprint.get("/account")
@hide
async def account_page():
    user = await require_user()
    notice = None
    for key, text in _NOTICES.items():
        if request.args.get(key) or request.args.get("done") == key:
            notice = text
    if notice and request.args.get("welcome") and not await mail_configured(_herald()):
        notice = ("Welcome to Herald. This Herald cannot send mail yet: your confirmation link was "
                  "written to its log, and its admin can give it to you.")
    return await _page(user, notice=notice)


@blueprint.post("/account/verify")
@hide
async def resend_verification():
    user = await require_user()
    if user.email_verified_at is not None:
        return redirect("/account")
    herald = _herald()
    try:
        await accounts.send_verification(herald, user, address=client_address(request, herald.settings.trusted_proxies))
    except HeraldError as exc:
        return await _page(user, form="verify", exc=exc)
    return redirect("/account?done=verify")


@blueprint.post("/account/email")
@hide
async def change_email():
    user = await require_user()
    herald = _herald()
    form = await request.form
    try:
        await accounts.request_email_change(herald, user, form.get("current_password", ""),
                                            form.get("email", ""),
                                            address=client_address(request, herald.settings.trusted_proxies))
    except HeraldError as exc:
        return await _page(user, form="email", exc=exc, new_email=form.get("email", ""))
    return redirect("/account?done=email")


@blueprint.post("/account/password")
@hide
async def change_password():
    user = await require_user()
    session = await load_session()
    form = await request.form
    # The form offers to keep the tokens (its box, checked by default, ends them); a request
    # that does not show it was offered (a script, an old page) ends them.
    end_tokens = form.get("end_tokens") == "on" or form.get("end_tokens_offered") != "1"
    try:
        ended = await accounts.change_password(user, form.get("current_password", ""), form.get("password", ""),
                                               keep_session_id=session.id if session else None,
                                               clock=_herald().clock, end_tokens=end_tokens)
    except HeraldError as exc:
        return await _page(user, form="password", exc=exc)
    return redirect("/account?done=" + ("password_tokens" if ended else "password"))


@blueprint.post("/account/time-zone")
@hide
async def change_time_zone():
    user = await require_user()
    form = await request.form
    try:
        await accounts.set_time_zone(user, form.get("time_zone", ""))
    except HeraldError as exc:
        return await _page(user, form="time_zone", exc=exc, time_zone_value=form.get("time_zone", ""))
    return redirect("/account?done=time_zone")


@blueprint.post("/account/tokens")
@hide
async def create_token_form():
    user = await require_user()
    form = await request.form
    # The page's form says it offers scope checkboxes, so ticking none is an error there,
    # not the default; a form without them gets the default.
    scopes = form.getlist("scopes") if form.get("scope_choice") else None
    try:
        token, record = await tokens.create_personal_token(user, form.get("name", ""), scopes)
    except HeraldError as exc:
        return await _page(user, form="token", exc=exc, token_name=form.get("name", ""),
                           chosen_scopes=scopes if scopes is not None else list(tokens.DEFAULT_SCOPES))
    # Shown on this response only: the page is not cached and the value is never stored.
    html, status, headers = await _page(user, new_token=token, new_token_name=record.name, status=201)
    return html, status, {**headers, "Cache-Control": "no-store"}


@blueprint.post("/account/tokens/<token_id>/revoke")
@hide
async def revoke_token_form(token_id: str):
    user = await require_user()
    await tokens.revoke_personal_token(user, token_id, clock=_herald().clock)
    return redirect("/account?done=revoked")


@blueprint.post("/account/delete")
@hide
async def delete_account():
    user = await require_user()
    form = await request.form
    try:
        await accounts.delete_account(_herald(), user, form.get("current_password", ""))
    except HeraldError as exc:
        return await _page(user, form="delete", exc=exc)
    await end_session(request.cookies.get(SESSION_COOKIE, ""))
    g.herald_session = None
    response = redirect("/login?done=deleted")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- JSON API ----------------------------------------------------------------------------


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="What the token is for, e.g. a script's name")
    scopes: list[str] | None = Field(
        default=None, description="What the token may do: any of " + ", ".join(tokens.SCOPES)
        + f" (default: {', '.join(tokens.DEFAULT_SCOPES)})")


async def _session_user(*, verified: bool = False):
    """Token management takes the browser session only: a token cannot mint or revoke tokens."""
    if request.headers.get("Authorization"):
        raise Unauthenticated("Personal access tokens are managed with the browser session, not a Bearer token.", code="session_required")
    return await require_user(verified=verified)


@blueprint.get("/api/v1/me")
@tag(["account"])
@security_scheme([{"accessToken": ["printers:read"]}])
async def me():
    """The signed-in user (session or an access token with printers:read)."""
    user = await require_bearer_or_session("printers:read")
    verified = user.email_verified_at is not None
    return {"id": user.id, "email": user.email, "email_verified": verified, "time_zone": user.time_zone}


@blueprint.get("/api/v1/tokens")
@tag(["account"])
async def list_tokens():
    """The user's personal access tokens (never their values). Session only."""
    user = await _session_user()
    return {"tokens": [tokens.token_json(t) for t in await tokens.personal_tokens(user)]}


@blueprint.post("/api/v1/tokens")
@tag(["account"])
@document_request(TokenCreate)
async def create_token():
    """Create a personal access token; the value is in this answer only. Session + X-CSRF-Token."""
    user = await _session_user(verified=True)
    data = await read_model(TokenCreate)  # the JSON API's one rule for bodies (appliance.core.jsonbody)
    token, record = await tokens.create_personal_token(user, data.name, data.scopes)
    return {**tokens.token_json(record), "token": token}, 201, {"Cache-Control": "no-store"}


@blueprint.delete("/api/v1/tokens/<token_id>")
@tag(["account"])
async def delete_token(token_id: str):
    """Revoke a personal access token at once. Session + X-CSRF-Token."""
    user = await _session_user()
    await tokens.revoke_personal_token(user, token_id, clock=_herald().clock)
    return "", 204
