"""The skill's request handlers (ask-sdk-core). The printer status source arrives as the
``context`` argument of ``Skill.invoke``; None means no account is linked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ask_sdk_core.dispatch_components import AbstractExceptionHandler, AbstractRequestHandler
from ask_sdk_core.handler_input import HandlerInput
from ask_sdk_core.skill import CustomSkill
from ask_sdk_core.skill_builder import SkillBuilder
from ask_sdk_core.utils import get_supported_interfaces, is_intent_name, is_request_type
from ask_sdk_model import IntentRequest, Response
from ask_sdk_model.interfaces.alexa.presentation.apl import RenderDocumentDirective
from ask_sdk_model.ui import LinkAccountCard

from skill import phrases as ph
from skill import status as st
from skill import visual
from skill.names import match_printer
from skill.source import PrinterStatusSource

# Intents answered about one printer (a PRINTER_NAME slot named "printer").
PRINTER_INTENTS = {
    "PrinterStatusIntent": "status",
    "ProgressIntent": "progress",
    "TemperatureIntent": "temperatures",
    "CurrentJobIntent": "current_job",
    "LastJobIntent": "last_job",
}
OTHER_INTENTS = (
    "ListPrintersIntent",
    "AMAZON.HelpIntent",
    "AMAZON.StopIntent",
    "AMAZON.CancelIntent",
    "AMAZON.FallbackIntent",
    "AMAZON.NavigateHomeIntent",
)
# Answered by the appliance before the skill sees it (appliance/alexa/reminders.py: it calls
# Amazon's Reminders API; appliance/alexa/control.py: it pauses, resumes and cancels prints over the
# relay's tunnel; neither this pure package does).
APPLIANCE_INTENTS = ("RemindWhenDoneIntent", "PauseIntent", "ResumeIntent", "CancelPrintIntent")
HANDLED_INTENTS = frozenset(PRINTER_INTENTS) | frozenset(OTHER_INTENTS) | frozenset(APPLIANCE_INTENTS)
_PENDING = "pending_intent"


def _context(handler_input: HandlerInput):
    source: PrinterStatusSource | None = handler_input.context
    phrases = ph.for_locale(getattr(handler_input.request_envelope.request, "locale", None))
    return source, phrases


def _apl_version(handler_input: HandlerInput) -> str | None:
    """The newest APL version the device renders (``runtime.maxVersion``), or None without a screen.
    A device that reports APL without a version is taken to render the first one."""
    try:
        apl = get_supported_interfaces(handler_input).alexa_presentation_apl
    except AttributeError:
        return None
    if apl is None:
        return None
    return getattr(getattr(apl, "runtime", None), "max_version", None) or "1.0"


def _answer(handler_input: HandlerInput, speech: str, printers: list[dict[str, Any]] | None = None,
            *, source: PrinterStatusSource | None = None, phrases=None) -> Response:
    builder = handler_input.response_builder.speak(speech).set_should_end_session(True)
    version = _apl_version(handler_input) if printers and source is not None else None
    document = visual.document_for(version) if version is not None else None
    if document is not None and source is not None and printers:
        now = source.now()
        zone = ph.local_zone(source.time_zone())
        builder.add_directive(RenderDocumentDirective(
            token=visual.TOKEN, document=document,
            datasources=visual.datasource(printers, phrases, now, zone)))
    return builder.response


def _ask(handler_input: HandlerInput, speech: str, reprompt: str) -> Response:
    return handler_input.response_builder.speak(speech).ask(reprompt).response


def _link_account(handler_input: HandlerInput, phrases) -> Response:
    return (handler_input.response_builder.speak(phrases.link_account())
            .set_card(LinkAccountCard()).set_should_end_session(True).response)


def _slot_value(handler_input: HandlerInput) -> str | None:
    intent = getattr(handler_input.request_envelope.request, "intent", None)
    slots = getattr(intent, "slots", None) or {}
    slot = slots.get("printer")
    if slot is None:
        return None
    resolutions = getattr(slot, "resolutions", None)
    for authority in getattr(resolutions, "resolutions_per_authority", None) or []:
        code = getattr(getattr(authority.status, "code", None), "value", None)
        if code == "ER_SUCCESS_MATCH" and authority.values:
            return authority.values[0].value.name
    return slot.value or None


class LaunchHandler(AbstractRequestHandler):
    def can_handle(self, handler_input: HandlerInput) -> bool:
        return is_request_type("LaunchRequest")(handler_input)

    def handle(self, handler_input: HandlerInput) -> Response:
        source, phrases = _context(handler_input)
        if source is None:
            return _link_account(handler_input, phrases)
        printers = source.printers()
        zone = ph.local_zone(source.time_zone())
        return _answer(handler_input, phrases.summary(printers, source.now(), zone), printers,
                       source=source, phrases=phrases)


class PrinterIntentHandler(AbstractRequestHandler):
    """Status, progress, temperatures, current job and last job of one printer."""

    def can_handle(self, handler_input: HandlerInput) -> bool:
        return any(is_intent_name(name)(handler_input) for name in PRINTER_INTENTS)

    def handle(self, handler_input: HandlerInput) -> Response:
        source, phrases = _context(handler_input)
        if source is None:
            return _link_account(handler_input, phrases)
        request = handler_input.request_envelope.request
        # can_handle matched this request's intent name against PRINTER_INTENTS.
        assert isinstance(request, IntentRequest) and request.intent is not None
        intent_name = request.intent.name
        assert intent_name is not None
        session_attributes = handler_input.attributes_manager.session_attributes
        # Typed Optional, but the getter raises for an out-of-session request instead.
        assert session_attributes is not None
        asked = _slot_value(handler_input)
        pending = session_attributes.pop(_PENDING, None)
        if pending in PRINTER_INTENTS and intent_name == "PrinterStatusIntent" and asked:
            intent_name = pending  # "Which printer?" -- "The Prusa."
        printers = source.printers()
        now, zone = source.now(), ph.local_zone(source.time_zone())
        method: Callable[..., str] = getattr(phrases, PRINTER_INTENTS[intent_name])
        if not printers:
            return _answer(handler_input, phrases.no_printers())
        if asked:
            printer = match_printer(asked, printers)
            if printer is None:
                session_attributes[_PENDING] = intent_name
                return _ask(handler_input, phrases.unknown_printer(asked, printers),
                            phrases.which_printer(printers))
            return _answer(handler_input, method(printer, now, zone), [printer],
                           source=source, phrases=phrases)
        if len(printers) == 1:
            return _answer(handler_input, method(printers[0], now, zone), printers,
                           source=source, phrases=phrases)
        if intent_name == "PrinterStatusIntent":
            return _answer(handler_input, phrases.summary(printers, now, zone), printers,
                           source=source, phrases=phrases)
        busy = [p for p in printers if st.condition(p) in ("printing", "paused")]
        if intent_name in ("ProgressIntent", "CurrentJobIntent"):
            if not busy:
                return _answer(handler_input, phrases.none_printing(), printers,
                               source=source, phrases=phrases)
            speech = " ".join(method(p, now, zone) for p in busy)
            return _answer(handler_input, speech, busy, source=source, phrases=phrases)
        # "What's the temperature?" most likely means the printer that is printing;
        # "how did the last print go?" the one printer that has a last print.
        meant = busy if intent_name == "TemperatureIntent" else [p for p in printers if st.last_job(p)]
        if len(meant) == 1:
            return _answer(handler_input, method(meant[0], now, zone), meant,
                           source=source, phrases=phrases)
        session_attributes[_PENDING] = intent_name
        question = phrases.which_printer(printers)
        return _ask(handler_input, question, question)


class NavigateHomeHandler(AbstractRequestHandler):
    """"Alexa, go home" on a screen: the device leaves the skill; nothing is read out."""

    def can_handle(self, handler_input: HandlerInput) -> bool:
        return is_intent_name("AMAZON.NavigateHomeIntent")(handler_input)

    def handle(self, handler_input: HandlerInput) -> Response:
        return handler_input.response_builder.set_should_end_session(True).response


class ListPrintersHandler(AbstractRequestHandler):
    def can_handle(self, handler_input: HandlerInput) -> bool:
        return is_intent_name("ListPrintersIntent")(handler_input)

    def handle(self, handler_input: HandlerInput) -> Response:
        source, phrases = _context(handler_input)
        if source is None:
            return _link_account(handler_input, phrases)
        printers = source.printers()
        return _answer(handler_input, phrases.list_printers(printers), printers,
                       source=source, phrases=phrases)


class HelpHandler(AbstractRequestHandler):
    def can_handle(self, handler_input: HandlerInput) -> bool:
        return is_intent_name("AMAZON.HelpIntent")(handler_input)

    def handle(self, handler_input: HandlerInput) -> Response:
        _, phrases = _context(handler_input)
        return _ask(handler_input, phrases.help(), phrases.reprompt())


class StopHandler(AbstractRequestHandler):
    def can_handle(self, handler_input: HandlerInput) -> bool:
        return is_intent_name("AMAZON.StopIntent")(handler_input) or is_intent_name(
            "AMAZON.CancelIntent")(handler_input)

    def handle(self, handler_input: HandlerInput) -> Response:
        _, phrases = _context(handler_input)
        return handler_input.response_builder.speak(phrases.goodbye()).set_should_end_session(True).response


class FallbackHandler(AbstractRequestHandler):
    def can_handle(self, handler_input: HandlerInput) -> bool:
        return is_intent_name("AMAZON.FallbackIntent")(handler_input)

    def handle(self, handler_input: HandlerInput) -> Response:
        _, phrases = _context(handler_input)
        return _ask(handler_input, phrases.fallback(), phrases.reprompt())


class SessionEndedHandler(AbstractRequestHandler):
    def can_handle(self, handler_input: HandlerInput) -> bool:
        return is_request_type("SessionEndedRequest")(handler_input)

    def handle(self, handler_input: HandlerInput) -> Response:
        return handler_input.response_builder.response


class UnhandledHandler(AbstractRequestHandler):
    """Any other request (an intent from a newer model, a skill event): a friendly fallback."""

    def can_handle(self, handler_input: HandlerInput) -> bool:
        return True

    def handle(self, handler_input: HandlerInput) -> Response:
        _, phrases = _context(handler_input)
        if is_request_type("IntentRequest")(handler_input) or is_request_type("LaunchRequest")(handler_input):
            return _ask(handler_input, phrases.fallback(), phrases.reprompt())
        return handler_input.response_builder.response


class SpokenErrorHandler(AbstractExceptionHandler):
    """A bug must not leave the user in silence: say so briefly."""

    def can_handle(self, handler_input: HandlerInput, exception: Exception) -> bool:
        return True

    def handle(self, handler_input: HandlerInput, exception: Exception) -> Response:
        import logging

        logging.getLogger("skill").exception("skill handler failed", exc_info=exception)
        locale = getattr(handler_input.request_envelope.request, "locale", "") or ""
        speech = ("Entschuldigung, da ist etwas schiefgegangen." if locale.startswith("de")
                  else "Sorry, something went wrong.")
        return handler_input.response_builder.speak(speech).set_should_end_session(True).response


def build_skill() -> CustomSkill:
    """The skill; call ``skill.invoke(request_envelope, source)`` per request."""
    builder = SkillBuilder()
    for handler in (LaunchHandler(), PrinterIntentHandler(), NavigateHomeHandler(), ListPrintersHandler(), HelpHandler(),
                    StopHandler(), FallbackHandler(), SessionEndedHandler(), UnhandledHandler()):
        builder.add_request_handler(handler)
    builder.add_exception_handler(SpokenErrorHandler())
    return builder.create()
