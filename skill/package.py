"""The skill package (ASK CLI layout) with a user's endpoint and printer names filled in."""

from __future__ import annotations

import io
import json
import zipfile
from importlib import resources
from typing import Any

from skill import LOCALES


def manifest(endpoint: str) -> dict[str, Any]:
    text = resources.files("skill").joinpath("skill.json").read_text()
    return json.loads(text.replace("{{ENDPOINT}}", endpoint))


def interaction_model(locale: str, printer_names: list[str] | None = None) -> dict[str, Any]:
    model = json.loads(resources.files("skill").joinpath(f"models/{locale}.json").read_text(encoding="utf-8"))
    names = [n for n in dict.fromkeys(n.strip() for n in printer_names or []) if n]
    if names:
        for slot_type in model["interactionModel"]["languageModel"]["types"]:
            if slot_type["name"] == "PRINTER_NAME":
                slot_type["values"] = [{"name": {"value": n}} for n in names]
    return model


def build_package(endpoint: str, account_linking: dict[str, Any],
                  printer_names: list[str] | None = None) -> bytes:
    """A zip: skill-package/skill.json, one interaction model per locale, accountLinking.json."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("skill-package/skill.json", json.dumps(manifest(endpoint), indent=2))
        for locale in LOCALES:
            archive.writestr(f"skill-package/interactionModels/custom/{locale}.json",
                             json.dumps(interaction_model(locale, printer_names), indent=2, ensure_ascii=False))
        archive.writestr("accountLinking.json",
                         json.dumps({"accountLinkingRequest": account_linking}, indent=2))
        archive.writestr("README.txt", _README)
    return buffer.getvalue()


_README = """Herald skill package

skill-package/      the manifest and interaction models, in the ASK CLI layout:
                    ask smapi create-skill / ask deploy, or paste each file into the
                    developer console (Build > JSON Editor for the models).
accountLinking.json the account-linking settings; with the ASK CLI:
                    ask smapi update-account-linking-info -s SKILL_ID --account-linking-request file:accountLinking.json
                    (it holds your client secret: keep this file private).
"""
