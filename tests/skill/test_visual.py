"""APL: the document a device gets is one its reported APL version renders."""

from __future__ import annotations

import pytest

import skill
from skill import visual
from tests.support.alexa import NOW, apl_directives, envelope, printer_in

# What APL 1.0 defines: components and the document's top-level properties.
APL_1_0_COMPONENTS = {"Container", "Frame", "Image", "Pager", "ScrollView", "Sequence", "Text",
                      "TouchWrapper", "VectorGraphic", "Video"}
APL_1_0_DOCUMENT = {"type", "version", "theme", "import", "resources", "styles", "layouts",
                    "mainTemplate", "graphics"}


def _components(node):
    if isinstance(node, dict):
        if "type" in node and ("items" in node or "text" in node or "width" in node):
            yield node["type"]
        for value in node.values():
            yield from _components(value)
    elif isinstance(node, list):
        for value in node:
            yield from _components(value)


def test_the_document_uses_only_what_apl_1_0_has():
    document = visual.document()
    assert set(document) <= APL_1_0_DOCUMENT
    assert set(_components(document["mainTemplate"])) <= APL_1_0_COMPONENTS
    assert "import" not in document  # the styles it names are its own
    assert set(document["styles"]) >= {"textStyleDisplay4", "textStyleHeadline", "textStyleBody",
                                       "textStyleCallout"}


def _apl_envelope(max_version):
    env = envelope(intent="PrinterStatusIntent")
    apl = {} if max_version is None else {"runtime": {"maxVersion": max_version}}
    env["context"]["System"]["device"]["supportedInterfaces"]["Alexa.Presentation.APL"] = apl
    return env


@pytest.mark.parametrize("reported, declared", [
    ("1.0", "1.0"), ("1.4", "1.4"), ("1.9", "1.9"), ("2022.2", "2022.2"), ("2023.3", "2023.3"),
    ("2024.2", "2023.3"), (None, "1.0"), ("0.9", None), ("not-a-version", None),
])
def test_the_declared_version_is_one_the_device_renders(reported, declared):
    answer = skill.invoke(_apl_envelope(reported), skill.StaticSource([printer_in("printing")], "UTC", NOW))
    directives = apl_directives(answer)
    if declared is None:
        assert directives == []
    else:
        (directive,) = directives
        assert directive["document"]["version"] == declared
        assert visual.version_key(directive["document"]["version"]) <= visual.version_key(reported or "1.0")
    assert answer["response"]["outputSpeech"]["ssml"].startswith("<speak>Prusa is printing")


def test_the_screen_shows_sentences_and_units():
    big = {**printer_in("idle", "MK4-01"), "spoken_name": "the big one"}
    answer = skill.invoke(_apl_envelope("1.6"), skill.StaticSource([big], "UTC", NOW))
    (directive,) = apl_directives(answer)
    (item,) = directive["datasources"]["herald"]["printers"]
    assert item["name"] == "MK4-01"  # the screen keeps the name as written
    assert item["state"] == "The big one is idle."
    assert item["temperatures"] == "24 °C · 24 °C"
