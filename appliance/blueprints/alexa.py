"""Alexa: the verified skill endpoint (POST /alexa) and the setup page."""

from __future__ import annotations

import logging

from quart import Blueprint, Response, current_app, jsonify, render_template, request

import skill
from appliance.app import on_shutdown, on_startup
from appliance.auth import csrf_exempt, require_user
from appliance.db import shielded
from appliance.errors import APIError
from appliance.services import alexa as alexa_service
from appliance.services import oauth
from appliance.services.alexa_certs import CachingCertFetcher
from appliance.services.alexa_verify import (
    AlexaVerificationError,
    RequestVerifier,
    default_trust_roots,
    parse_envelope,
)

log = logging.getLogger(__name__)
blueprint = Blueprint("alexa", __name__)


def init_app(app) -> None:
    herald = app.extensions["herald"]
    fetcher = herald.deps.get("alexa_cert_fetcher")
    own_fetcher = None
    if fetcher is None:
        own_fetcher = fetcher = CachingCertFetcher()
    roots = herald.deps.get("alexa_trust_roots")
    app.extensions["herald_alexa"] = RequestVerifier(
        trust_roots=roots if roots is not None else default_trust_roots,
        fetch=fetcher,
        skill_id=lambda: herald.settings.alexa_skill_id,
        now=herald.clock.now,
    )

    async def _warn(_app) -> None:
        if not herald.settings.alexa_verify_requests:
            log.warning("HERALD_ALEXA_VERIFY_REQUESTS is off: /alexa accepts requests that Amazon "
                        "did not sign. Anyone who can reach this server can read printer status. "
                        "Turn it back on unless you are testing locally.")

    async def _close(_app) -> None:
        if own_fetcher is not None:
            await own_fetcher.close()

    on_startup(app, _warn)
    on_shutdown(app, _close)


@blueprint.post("/alexa")
@csrf_exempt
async def alexa_endpoint():
    herald = current_app.extensions["herald"]
    body = await request.get_data()
    try:
        if herald.settings.alexa_verify_requests:
            envelope = await current_app.extensions["herald_alexa"].verify(request.headers, body)
        else:
            envelope = parse_envelope(body)
    except AlexaVerificationError as exc:
        log.info("refused an Alexa request: %s", exc)
        raise APIError(400, "invalid_alexa_request", str(exc)) from None
    request_type = envelope["request"].get("type", "")
    if request_type == "AlexaSkillEvent.SkillDisabled":
        await _revoke_on_disable(herald, envelope)
        return jsonify({"version": "1.0", "response": {}})
    if request_type.startswith("AlexaSkillEvent."):
        return jsonify({"version": "1.0", "response": {}})
    source = await alexa_service.source_for_request(herald, envelope)
    return jsonify(skill.invoke(envelope, source))


async def _revoke_on_disable(herald, envelope) -> None:
    token = (((envelope.get("context") or {}).get("System") or {}).get("user") or {}).get("accessToken")
    if token:
        await shielded(oauth.revoke_for_access_token(str(token), herald.clock.now()))


@blueprint.route("/alexa/setup", methods=["GET", "POST"])
async def setup():
    user = await require_user(admin=True)
    herald = current_app.extensions["herald"]
    error = None
    status = 200
    if request.method == "POST":
        form = await request.form
        try:
            await shielded(alexa_service.configure_alexa_client(herald, form.get("vendor_id", ""), user))
        except APIError as exc:
            error, status = exc.message, 400
    client = await alexa_service.alexa_client(herald)
    values = alexa_service.setup_values(herald, client)
    html = await render_template("alexa/setup.html", values=values, error=error,
                                 linking=alexa_service.account_linking(values))
    return html, status


@blueprint.get("/alexa/skill-package.zip")
async def skill_package():
    user = await require_user(admin=True)
    herald = current_app.extensions["herald"]
    data = await alexa_service.skill_package(herald, user)
    return Response(data, mimetype="application/zip", headers={
        "Content-Disposition": 'attachment; filename="herald-skill-package.zip"',
        "Cache-Control": "no-store",
    })
