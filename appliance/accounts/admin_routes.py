"""Admin pages under /admin: users, invites, signup mode, mail, system health."""

from __future__ import annotations

from quart import Blueprint, redirect, render_template, request
from quart_schema import hide

from appliance.accounts import admin, invites
from appliance.accounts import users as accounts
from appliance.accounts.auth import require_user
from appliance.accounts.models import User
from appliance.core.errors import HeraldError, NotFound, status_of
from appliance.core.herald import Herald, current_herald
from appliance.core.mail import mail_configured, send_mail
from appliance.core.runtime_settings import effective_all, set_runtime
from appliance.core.settings import SIGNUP_MODES

blueprint = Blueprint("admin", __name__, url_prefix="/admin")


def _herald() -> Herald:
    return current_herald()


async def _require_admin() -> User:
    return await require_user(admin=True)


async def _render(template: str, *, section: str, status: int = 200, headers=None, **context):
    context.setdefault("errors", {})
    context.setdefault("notice", None)
    html = await render_template(template, section=section, **context)
    return html, status, {"Cache-Control": "no-store", **(headers or {})}


# --- users -----------------------------------------------------------------------------


async def _users_page(me: User, **context):
    users = await admin.list_users()
    return await _render("admin/users.html", section="users", me=me, users=users, **context)


@blueprint.get("")
@hide
async def index():
    await _require_admin()
    return redirect("/admin/users")


@blueprint.get("/users")
@hide
async def users():
    me = await _require_admin()
    notice = {"admin": "Saved.", "deleted": "The user was deleted."}.get(request.args.get("done", ""))
    return await _users_page(me, notice=notice)


@blueprint.post("/users/<user_id>/admin")
@hide
async def set_admin(user_id: str):
    me = await _require_admin()
    form = await request.form
    try:
        await admin.set_admin(user_id, form.get("is_admin") == "1")
    except HeraldError as exc:
        if isinstance(exc, NotFound):
            raise
        html, _, headers = await _users_page(me, error=exc.message)
        return html, status_of(exc), headers
    return redirect("/admin/users?done=admin")


@blueprint.get("/users/<user_id>/delete")
@hide
async def delete_user_form(user_id: str):
    """Ask first: deleting a user deletes everything they own."""
    me = await _require_admin()
    user = await admin.get_user(user_id)
    return await _render("admin/delete_user.html", section="users", me=me, user=user,
                         **await admin.what_user_owns(user))


@blueprint.post("/users/<user_id>/delete")
@hide
async def delete_user(user_id: str):
    me = await _require_admin()
    try:
        await admin.admin_delete_user(_herald(), user_id)
    except HeraldError as exc:
        if isinstance(exc, NotFound):
            raise
        html, _, headers = await _users_page(me, error=exc.message)
        return html, status_of(exc), headers
    return redirect("/admin/users?done=deleted")


@blueprint.post("/users/<user_id>/verification-link")
@hide
async def verification_link(user_id: str):
    me = await _require_admin()
    user = await admin.get_user(user_id)
    try:
        link = await accounts.admin_verification_link(_herald(), user)
    except HeraldError as exc:
        html, _, headers = await _users_page(me, error=exc.message)
        return html, status_of(exc), headers
    return await _users_page(me, link=link, link_user=user)


# --- invites ---------------------------------------------------------------------------


async def _invites_page(**context):
    return await _render("admin/invites.html", section="invites",
                         invites=await invites.open_invites(_herald()),
                         signup_mode=await invites.signup_mode(_herald()), **context)


@blueprint.get("/invites")
@hide
async def invite_list():
    await _require_admin()
    return await _invites_page(notice="The invite was revoked." if request.args.get("done") else None)


@blueprint.post("/invites")
@hide
async def invite_create():
    me = await _require_admin()
    form = await request.form
    try:
        days = int(form.get("days") or 7)
    except ValueError:
        days = 0
    try:
        token, invite = await invites.create_invite(_herald(), me, note=form.get("note", ""), days=days)
    except HeraldError as exc:
        html, _, headers = await _invites_page(errors={exc.extra.get("field", "form"): exc.message},
                                               note=form.get("note", ""))
        return html, status_of(exc), headers
    html, _, headers = await _invites_page(link=invites.invite_link(_herald(), token), new_invite=invite)
    return html, 201, headers


@blueprint.post("/invites/<int:invite_id>/revoke")
@hide
async def invite_revoke(invite_id: int):
    await _require_admin()
    await invites.revoke_invite(invite_id)
    return redirect("/admin/invites?done=revoked")


# --- signup mode ------------------------------------------------------------------------


async def _signup_page(**context):
    herald = _herald()
    return await _render("admin/signup.html", section="signup", modes=SIGNUP_MODES,
                         mode=await invites.signup_mode(herald),
                         from_env="signup_mode" in herald.settings.from_env, **context)


@blueprint.get("/signup")
@hide
async def signup_mode():
    await _require_admin()
    return await _signup_page(notice="Saved." if request.args.get("done") else None)


@blueprint.post("/signup")
@hide
async def signup_mode_save():
    await _require_admin()
    form = await request.form
    try:
        await set_runtime(_herald(), "signup_mode", form.get("signup_mode", ""))
    except HeraldError as exc:
        html, _, headers = await _signup_page(errors={"signup_mode": exc.message})
        return html, status_of(exc), headers
    return redirect("/admin/signup?done=1")


# --- mail ------------------------------------------------------------------------------------


async def _mail_page(**context):
    herald = _herald()
    values = await effective_all(herald)
    return await _render("admin/mail.html", section="mail", values=values,
                         from_env=herald.settings.from_env, password_set=bool(values["smtp_password"]),
                         **context)


@blueprint.get("/mail")
@hide
async def mail():
    await _require_admin()
    return await _mail_page(notice="Saved." if request.args.get("done") else None)


@blueprint.post("/mail")
@hide
async def mail_save():
    await _require_admin()
    form = await request.form
    try:
        await admin.save_mail_settings(_herald(), dict(form))
    except HeraldError as exc:
        html, _, headers = await _mail_page(errors={exc.extra.get("field", "form"): exc.message})
        return html, status_of(exc), headers
    return redirect("/admin/mail?done=1")


@blueprint.post("/mail/test")
@hide
async def mail_test():
    me = await _require_admin()
    herald = _herald()
    # Without an SMTP host the mail goes to the log: it must not claim there that mail works.
    text = ("This is a test mail from Herald. Mail works.\n" if await mail_configured(herald) else
            "This is a test mail from Herald. No SMTP host is configured, so it was written to "
            "this log and not sent: mail does not reach anyone yet.\n")
    result = await send_mail(herald, to=me.email, subject="Herald test mail", text=text)
    if result.error:
        html, _, headers = await _mail_page(errors={"test": f"Sending failed: {result.error}"})
        return html, 502, headers
    notice = (f"A test mail was sent to {me.email}." if result.sent
              else "No SMTP host is configured, so the test mail was written to Herald's log.")
    return await _mail_page(notice=notice)


# --- system ---------------------------------------------------------------------------------


@blueprint.get("/system")
@hide
async def system():
    await _require_admin()
    return await _render("admin/system.html", section="system", rows=await admin.system_rows(_herald()))
