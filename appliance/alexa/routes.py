"""Alexa: the verified skill endpoint (POST /alexa) and the setup page."""

from __future__ import annotations

import logging

from quart import Blueprint, Response, jsonify, render_template, request

import skill
from appliance.accounts.auth import csrf_exempt, require_user
from appliance.alexa import control, notifications
from appliance.alexa import status_source as alexa_service
from appliance.alexa.reminders import ReminderKeeper, is_ours
from appliance.alexa.verification import (
    AlexaVerificationError,
    RequestVerifier,
)
from appliance.core.db import shielded
from appliance.core.errors import HeraldError, Invalid
from appliance.core.herald import Herald, current_herald
from appliance.oauth import server as oauth

log = logging.getLogger(__name__)
blueprint = Blueprint("alexa", __name__)


@blueprint.post("/alexa")
@csrf_exempt
async def alexa_endpoint():
    herald = current_herald()
    body = await request.get_data()
    try:
        verifier = herald.part(RequestVerifier)
        if herald.settings.alexa_verify_requests:
            envelope = await verifier.verify(request.headers, body)
        else:
            envelope = verifier.check_unverified(body)  # the skill id is still checked when set
    except AlexaVerificationError as exc:
        log.info("refused an Alexa request: %s", exc)
        raise Invalid(str(exc), code="invalid_alexa_request") from None
    request_type = envelope["request"].get("type", "")
    if request_type == "AlexaSkillEvent.SkillDisabled":
        await _revoke_on_disable(herald, envelope)
        await notifications.forget_account(herald, envelope)
        await herald.part(ReminderKeeper).forget(envelope)
        return jsonify({"version": "1.0", "response": {}})
    if request_type == "AlexaSkillEvent.ProactiveSubscriptionChanged":
        await alexa_service.source_for_request(herald, envelope)  # remembers whose Amazon account it is
        await notifications.subscription_changed(envelope)
        return jsonify({"version": "1.0", "response": {}})
    if request_type.startswith("AlexaSkillEvent."):
        return jsonify({"version": "1.0", "response": {}})
    source = await alexa_service.source_for_request(herald, envelope)
    if is_ours(envelope):  # "tell me when my print is done", and keeping that reminder in step
        return jsonify(await herald.part(ReminderKeeper).answer(envelope, source))
    if control.is_ours(envelope):  # "pause the print", "cancel the print" (after Alexa's confirmation)
        return jsonify(await control.answer(herald, envelope, source))
    return jsonify(skill.invoke(envelope, source))


async def _revoke_on_disable(herald: Herald, envelope) -> None:
    token = (((envelope.get("context") or {}).get("System") or {}).get("user") or {}).get("accessToken")
    if token:
        await shielded(oauth.revoke_for_access_token(str(token), herald.clock.now()))


@blueprint.route("/alexa/setup", methods=["GET", "POST"])
async def setup():
    user = await require_user(admin=True)
    herald = current_herald()
    error = None
    status = 200
    if request.method == "POST":
        form = await request.form
        try:
            await shielded(alexa_service.configure_alexa_client(herald, form.get("vendor_id", ""), user))
        except HeraldError as exc:
            error, status = exc.message, 400
    client = await alexa_service.alexa_client(herald)
    values = alexa_service.setup_values(herald, client)
    html = await render_template("alexa/setup.html", values=values, error=error,
                                 linking=alexa_service.account_linking(values))
    return html, status


@blueprint.get("/alexa/skill-package.zip")
async def skill_package():
    user = await require_user(admin=True)
    herald = current_herald()
    data = await alexa_service.skill_package(herald, user)
    return Response(data, mimetype="application/zip", headers={
        "Content-Disposition": 'attachment; filename="herald-skill-package.zip"',
        "Cache-Control": "no-store",
    })


@blueprint.route("/alexa/notifications", methods=["GET", "POST"])
async def notifications_page():
    user = await require_user()
    herald = current_herald()
    saved = False
    if request.method == "POST":
        form = await request.form
        await notifications.set_notifications(user, form.get("notify") == "on")
        saved = True
    state = await notifications.notification_settings(user)
    return await render_template("alexa/notifications.html", state=state, saved=saved,
                                 configured=herald.part(notifications.AlexaNotifier).configured)
