"""skill.serialize.FastSerializer gives exactly what ask-sdk's DefaultSerializer gives."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
from ask_sdk_core.exceptions import SerializationException
from ask_sdk_core.serialize import DefaultSerializer
from ask_sdk_model import RequestEnvelope

import skill
from skill.serialize import FastSerializer
from tests.support.alexa import STATES, envelope, printer_in

# A request as a screen device sends it, with the parts Herald does not use
# (viewports, audio player, person, unit, entity resolutions, dialog state) and a key
# no model knows, so that every branch of the deserializer runs.
RICH = {
    "version": "1.0",
    "session": {
        "new": False, "sessionId": "amzn1.echo-api.session.1", "attributes": {"asked": "Prusa", "n": 2},
        "application": {"applicationId": "amzn1.ask.skill.1"},
        "user": {"userId": "amzn1.ask.account.1", "accessToken": "hat_x",
                 "permissions": {"consentToken": "c", "scopes": {"alexa::profile:name:read": {"status": "GRANTED"}}}},
    },
    "context": {
        "System": {
            "application": {"applicationId": "amzn1.ask.skill.1"},
            "user": {"userId": "amzn1.ask.account.1", "accessToken": "hat_x"},
            "person": {"personId": "amzn1.ask.person.1", "accessToken": "p"},
            "unit": {"unitId": "amzn1.ask.unit.1", "persistentUnitId": "u"},
            "device": {"deviceId": "amzn1.ask.device.1", "supportedInterfaces": {
                "AudioPlayer": {}, "Display": {"templateVersion": "1.0", "markupVersion": "1.0"},
                "Alexa.Presentation.APL": {"runtime": {"maxVersion": "2023.3"}}}},
            "apiEndpoint": "https://api.amazonalexa.com", "apiAccessToken": "a",
        },
        "AudioPlayer": {"playerActivity": "IDLE", "offsetInMilliseconds": 0},
        "Viewport": {
            "experiences": [{"arcMinuteWidth": 246, "arcMinuteHeight": 144, "canRotate": False, "canResize": False}],
            "mode": "HUB", "shape": "RECTANGLE", "pixelWidth": 1024, "pixelHeight": 600, "dpi": 160,
            "currentPixelWidth": 1024, "currentPixelHeight": 600, "touch": ["SINGLE"], "keyboard": [],
            "video": {"codecs": ["H_264_42", "H_264_41"]},
        },
        "Viewports": [{"type": "APL", "id": "main", "shape": "RECTANGLE", "dpi": 160,
                       "presentationType": "STANDARD", "canRotate": False,
                       "configuration": {"current": {"mode": "HUB", "video": {"codecs": ["H_264_42"]},
                                                     "size": {"type": "DISCRETE", "pixelWidth": 1024,
                                                              "pixelHeight": 600}}}}],
        "aBrandNewContextPart": {"keep": ["me", 1]},
    },
    "request": {
        "type": "IntentRequest", "requestId": "amzn1.echo-api.request.1",
        "timestamp": "2026-11-22T05:51:49.123Z", "locale": "de-DE", "dialogState": "STARTED",
        "intent": {"name": "PrinterStatusIntent", "confirmationStatus": "NONE", "slots": {
            "printer": {"name": "printer", "value": "prusa", "confirmationStatus": "NONE", "source": "USER",
                        "resolutions": {"resolutionsPerAuthority": [{
                            "authority": "amzn1.er-authority.echo-sdk.amzn1.ask.skill.1.PrinterName",
                            "status": {"code": "ER_SUCCESS_MATCH"},
                            "values": [{"value": {"name": "Prusa", "id": "p1"}}]}]}}}},
    },
}


def _both(payload):
    stock = DefaultSerializer().deserialize(json.dumps(payload), RequestEnvelope)
    fast = FastSerializer().deserialize_parsed(copy.deepcopy(payload), RequestEnvelope)
    return stock, fast


@pytest.mark.parametrize("payload", [
    RICH,
    envelope(request_type="LaunchRequest", access_token="hat_x", screen=True),
    envelope(request_type="SessionEndedRequest"),
    envelope(intent="ProgressIntent", printer="Voron", locale="de-DE", session_attributes={"a": [1, 2]}),
    {**envelope(request_type="AlexaSkillEvent.SkillDisabled"), "request": {
        "type": "AlexaSkillEvent.SkillDisabled", "requestId": "r", "timestamp": "2026-11-22T05:51:49Z",
        "eventCreationTime": "2026-11-22T05:51:48Z", "eventPublishingTime": "2026-11-22T05:51:49Z",
        "body": {"userInformationPersistenceStatus": "PERSISTED"}}},
], ids=["rich", "launch-screen", "session-ended", "intent-de", "skill-disabled"])
def test_requests_deserialize_exactly_as_the_stock_serializer(payload):
    stock, fast = _both(payload)
    assert fast == stock
    assert DefaultSerializer().serialize(fast) == DefaultSerializer().serialize(stock)


def test_enums_datetimes_and_unknown_keys_come_through():
    _stock, fast = _both(RICH)
    assert fast.request.timestamp == datetime(2026, 11, 22, 5, 51, 49, 123000, tzinfo=UTC)
    assert fast.request.dialog_state.value == "STARTED"
    slot = fast.request.intent.slots["printer"]
    assert slot.resolutions.resolutions_per_authority[0].status.code.value == "ER_SUCCESS_MATCH"
    assert fast.context.aBrandNewContextPart == {"keep": ["me", 1]}
    assert fast.context.viewports[0].configuration.current.size.pixel_width == 1024


def test_a_timestamp_that_is_not_iso_8601_goes_the_stock_way():
    payload = copy.deepcopy(RICH)
    payload["request"]["timestamp"] = "Sun, 22 Nov 2026 05:51:49 GMT"
    stock, fast = _both(payload)
    assert fast.request.timestamp == stock.request.timestamp
    payload["request"]["timestamp"] = "not a time"
    with pytest.raises(SerializationException):
        FastSerializer().deserialize_parsed(payload, RequestEnvelope)


def test_a_malformed_request_is_a_serialization_error_as_before():
    payload = copy.deepcopy(RICH)
    payload["request"]["type"] = "NoSuchRequestType"
    with pytest.raises(SerializationException):
        DefaultSerializer().deserialize(json.dumps(payload), RequestEnvelope)
    with pytest.raises(SerializationException):
        FastSerializer().deserialize_parsed(payload, RequestEnvelope)


@pytest.mark.parametrize("screen", [False, True])
@pytest.mark.parametrize("state", STATES)
def test_responses_serialize_exactly_as_the_stock_serializer(state, screen):
    from skill.source import StaticSource
    from tests.support.alexa import NOW

    request = FastSerializer().deserialize_parsed(
        envelope(intent="PrinterStatusIntent", printer="Prusa", screen=screen), RequestEnvelope)
    response = skill._skill().invoke(request_envelope=request,
                                     context=StaticSource([printer_in(state)], "UTC", NOW))
    assert FastSerializer().serialize(response) == DefaultSerializer().serialize(response)
