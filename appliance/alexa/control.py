"""Alexa pauses, resumes and cancels a print: "Alexa, ask Herald to pause the print" (issue 19).

``PauseIntent``, ``ResumeIntent`` and ``CancelPrintIntent`` (never ``AMAZON.CancelIntent``, which
means "stop talking") are answered here, not by the pure skill: they act, through the same rule as
the printer page, the API and Home Assistant's buttons (relay/control.py ``control_print``, source
``alexa``, so every command is checked against both consents and lands in the printer's events).

The printer is found as for the other printer intents: the one named (name or spoken name), the
only printer, or the only one a command fits (printing or paused; paused for resume); with several,
Herald asks which, and the answer ("the Prusa", heard as ``PrinterStatusIntent``) comes back here
through the session's ``pending_intent``. A cancel is carried out only once Alexa's dialog
management confirmed it: Herald answers the first request with ``Dialog.ConfirmIntent`` (the
question names the printer; the interaction model marks the intent ``confirmationRequired``, with
a prompt of its own) and cancels only when ``intent.confirmationStatus`` is ``CONFIRMED``. Every
failure is spoken: nothing here answers with an error status.
"""

from __future__ import annotations

import logging
from typing import Any

from appliance.accounts.models import User
from appliance.core.errors import HeraldError, NotAllowed, Unavailable
from appliance.core.herald import Herald
from appliance.printers.models import Printer
from appliance.relay.control import control_consent, control_print
from skill import StaticSource
from skill import phrases as ph
from skill import status as st
from skill.names import match_printer

log = logging.getLogger(__name__)

INTENTS = {"PauseIntent": "pause", "ResumeIntent": "resume", "CancelPrintIntent": "cancel"}
PENDING = "pending_intent"  # the skill's session attribute for "Which printer?" (skill/handlers.py)
CANCEL_PRINTER = "cancel_printer"  # the printer id a cancel confirmation is asked for
# What a command needs the printer to be doing (skill/status.py conditions).
FITS = {"pause": ("printing",), "resume": ("paused",), "cancel": ("printing", "paused")}


def _request(envelope: dict[str, Any]) -> dict[str, Any]:
    return envelope.get("request") or {}


def _attributes(envelope: dict[str, Any]) -> dict[str, Any]:
    return dict((envelope.get("session") or {}).get("attributes") or {})


def _slot(intent: dict[str, Any]) -> str | None:
    slot = (intent.get("slots") or {}).get("printer") or {}
    for authority in ((slot.get("resolutions") or {}).get("resolutionsPerAuthority") or []):
        if ((authority.get("status") or {}).get("code") == "ER_SUCCESS_MATCH") and authority.get("values"):
            return str(authority["values"][0]["value"]["name"])
    return slot.get("value") or None


def is_ours(envelope: dict[str, Any]) -> bool:
    """The three control intents, and the printer named in answer to this module's "Which printer?"."""
    request = _request(envelope)
    if request.get("type") != "IntentRequest":
        return False
    intent = request.get("intent") or {}
    name = intent.get("name")
    if name in INTENTS:
        return True
    return (name == "PrinterStatusIntent" and _attributes(envelope).get(PENDING) in INTENTS
            and bool(_slot(intent)))


def _speak(text: str, *, end: bool = True, attributes: dict[str, Any] | None = None,
           reprompt: str | None = None, directives: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"outputSpeech": {"type": "SSML", "ssml": f"<speak>{text}</speak>"},
                                "shouldEndSession": end}
    if reprompt:
        response["reprompt"] = {"outputSpeech": {"type": "SSML", "ssml": f"<speak>{reprompt}</speak>"}}
    if directives:
        response["directives"] = directives
    answer: dict[str, Any] = {"version": "1.0", "response": response}
    if attributes is not None:
        answer["sessionAttributes"] = attributes
    return answer


def _confirm(text: str, printer: dict[str, Any], attributes: dict[str, Any]) -> dict[str, Any]:
    """Alexa's intent confirmation (``Dialog.ConfirmIntent``): she asks, the user's yes or no comes
    back as this intent with ``confirmationStatus`` CONFIRMED or DENIED, the printer in its slot."""
    attributes = {**attributes, CANCEL_PRINTER: printer["id"]}
    directive = {"type": "Dialog.ConfirmIntent", "updatedIntent": {
        "name": "CancelPrintIntent", "confirmationStatus": "NONE",
        "slots": {"printer": {"name": "printer", "value": printer["name"], "confirmationStatus": "NONE"}}}}
    answer = _speak(text, end=False, attributes=attributes, reprompt=text, directives=[directive])
    # A dialog directive keeps the session open; Amazon refuses shouldEndSession true with one.
    answer["response"].pop("shouldEndSession")
    return answer


def _which(phrases: ph.English, question: str, intent_name: str, printers: list[dict[str, Any]],
           attributes: dict[str, Any]) -> dict[str, Any]:
    return _speak(question, end=False, attributes={**attributes, PENDING: intent_name},
                  reprompt=phrases.which_printer(printers))


async def answer(herald: Herald, envelope: dict[str, Any], source: StaticSource | None) -> dict[str, Any]:
    """Alexa's answer; a failure anywhere is said, never an error status."""
    try:
        return await _answer(herald, envelope, source)
    except Exception:
        log.exception("Alexa control request failed")
        return _speak(ph.for_locale(str(_request(envelope).get("locale") or "en-US")).control_failed())


async def _answer(herald: Herald, envelope: dict[str, Any], source: StaticSource | None) -> dict[str, Any]:
    request = _request(envelope)
    phrases = ph.for_locale(str(request.get("locale") or "en-US"))
    if source is None:
        answer = _speak(phrases.link_account())
        answer["response"]["card"] = {"type": "LinkAccount"}
        return answer
    intent = request.get("intent") or {}
    attributes = _attributes(envelope)
    intent_name = str(intent.get("name") or "")
    if intent_name not in INTENTS:  # "Which printer?" -- "The Prusa."
        intent_name = str(attributes.get(PENDING))
    attributes.pop(PENDING, None)
    action = INTENTS[intent_name]
    confirmation = str(intent.get("confirmationStatus") or "NONE").upper()
    if action == "cancel" and confirmation == "DENIED":
        return _speak(phrases.cancel_denied())
    printers = source.printers()
    if not printers:
        return _speak(phrases.no_printers())
    asked = _slot(intent)
    printer = None
    if action == "cancel" and confirmation == "CONFIRMED":
        printer = next((p for p in printers if p["id"] == attributes.get(CANCEL_PRINTER)), None)
    if printer is None and asked:
        printer = match_printer(asked, printers)
        if printer is None:
            return _which(phrases, phrases.unknown_printer(asked, printers), intent_name, printers, attributes)
    if printer is None:
        if len(printers) == 1:
            printer = printers[0]
        else:
            fitting = [p for p in printers if st.condition(p) in FITS[action]]
            if not fitting:
                return _speak(phrases.none_printing())
            if len(fitting) > 1:
                return _which(phrases, phrases.which_printer(fitting), intent_name, fitting, attributes)
            printer = fitting[0]
    refusal = await _refusal(herald, phrases, action, printer)
    if refusal:
        return _speak(refusal)
    if action == "cancel" and confirmation != "CONFIRMED":
        return _confirm(phrases.confirm_cancel(printer), printer, attributes)
    return _speak(await _carry_out(herald, phrases, source, action, printer))


async def _refusal(herald: Herald, phrases: ph.English, action: str, printer: dict[str, Any]) -> str | None:
    """Why the command cannot be carried out, said before anything is asked or sent; None if it can."""
    cond = st.condition(printer)
    if cond in ("never_seen", "unreachable"):
        return phrases.control_unreachable(printer)
    if cond not in FITS[action]:
        if action == "pause" and cond == "paused":
            return phrases.control_already_paused(printer)
        if action == "resume" and cond == "printing":
            return phrases.control_not_paused(printer)
        return phrases.control_nothing(printer)
    row = await Printer.get_or_none(id=printer["id"])
    if row is None:
        return phrases.unknown_printer(printer["name"], [])
    consent = control_consent(herald, row)
    if not consent["plugin"]:
        return phrases.control_off_at_printer(printer)
    if not consent["herald"]:
        return phrases.control_off_in_herald(printer)
    return None


async def _carry_out(herald: Herald, phrases: ph.English, source: StaticSource, action: str,
                     printer: dict[str, Any]) -> str:
    user = await User.get_or_none(id=source.user_id) if source.user_id is not None else None
    if user is None:
        return phrases.link_account()
    try:
        await control_print(herald, user, printer["id"], action, "alexa")
    except Unavailable:
        return phrases.control_unreachable(printer)
    except NotAllowed as exc:
        if exc.code == "control_off_at_printer":
            return phrases.control_off_at_printer(printer)
        if exc.code == "control_off_in_herald":
            return phrases.control_off_in_herald(printer)
        return phrases.control_refused(printer)
    except HeraldError as exc:
        log.warning("Alexa %s for printer %s refused: %s", action, printer["id"], exc.message)
        return phrases.control_failed()
    except Exception:  # a bug must not leave Alexa with an error status: say so briefly
        log.exception("Alexa %s for printer %s failed", action, printer["id"])
        return phrases.control_failed()
    return phrases.control_done(action, printer)
