"""ask-sdk's DefaultSerializer, made cheaper for a server that answers every request.

Measured on the development machine, turning a LaunchRequest envelope into
ask-sdk's ``RequestEnvelope`` cost about 90 µs — more than half of the skill's
whole answer — because the stock serializer, for every model on every request,
re-reads the class's attribute map, resolves type names through ``__import__``
and regular expressions, scans the payload's keys against a list, and parses
timestamps with dateutil. This subclass keeps the stock serializer's rules and
only remembers what does not change between requests:

- per model class, its (attribute, JSON key, type) plan and the set of known keys;
- per type name, what it resolves to (a class, or list/dict of a type);
- ISO-8601 timestamps (what Alexa sends) go through ``datetime.fromisoformat``,
  anything else through the stock dateutil path.

Serializing the response remembers each class's (attribute, JSON key) pairs the
same way.

It also takes the already-parsed envelope (the endpoint parsed the body to verify
it), instead of a JSON string to parse again.

The overrides use the stock class's private (name-mangled) method names. Should a
future ask-sdk-core rename them, the stock methods simply run again: slower, never
wrong. ``tests/skill/test_serialize.py`` checks the result equals the stock
serializer's for every envelope the tests use.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import Enum
from typing import Any, Protocol

from ask_sdk_core.exceptions import SerializationException
from ask_sdk_core.serialize import DefaultSerializer

_LIST = re.compile(r"list\[(.*)\]")
_DICT = re.compile(r"dict\(([^,]*), (.*)\)")


class FastSerializer(DefaultSerializer):
    def __init__(self) -> None:
        super().__init__()
        self._types: dict[str, tuple[str, Any]] = {}
        self._plans: dict[type, tuple[tuple[tuple[str, str, str], ...], frozenset[str]]] = {}
        self._keys: dict[type, tuple[tuple[str, str], ...]] = {}

    def deserialize_parsed(self, payload: Any, obj_type: Any) -> Any:
        """Like ``deserialize``, for a payload already parsed from JSON."""
        if payload is None:
            return None
        return self._DefaultSerializer__deserialize(payload, obj_type)

    def serialize(self, obj: Any) -> Any:
        """The stock rules, with each model class's (attribute, JSON key) pairs remembered."""
        if obj is None or isinstance(obj, self.PRIMITIVE_TYPES):
            return obj
        if isinstance(obj, dict):
            return {key: self.serialize(value) for key, value in obj.items()}
        if isinstance(obj, list):
            return [self.serialize(item) for item in obj]
        deserialized_types = getattr(obj, "deserialized_types", None)
        if deserialized_types is None or isinstance(obj, Enum | tuple | date):
            return super().serialize(obj)
        keys = self._keys.get(type(obj))
        if keys is None:
            names = dict(getattr(obj, "attribute_map", {}) or {})
            keys = self._keys[type(obj)] = tuple((attribute, names.get(attribute, attribute))
                                                 for attribute in deserialized_types)
        result = {}
        for attribute, key in keys:
            value = getattr(obj, attribute)
            if value is not None:
                result[key] = self.serialize(value)
        return result

    # --- overrides of the stock serializer's private steps --------------------------------

    def _DefaultSerializer__deserialize(self, payload: Any, obj_type: Any) -> Any:
        if payload is None:
            return None
        if isinstance(obj_type, str):
            kind, resolved = self._resolve(obj_type)
            if kind == "list":
                if "," in resolved:  # a list of items of different types, by position
                    return [self._DefaultSerializer__deserialize(item, sub.strip())
                            for item, sub in zip(payload, resolved.split(","), strict=False)]
                return [self._DefaultSerializer__deserialize(item, resolved) for item in payload]
            if kind == "dict":
                return {key: self._DefaultSerializer__deserialize(value, resolved) for key, value in payload.items()}
            if kind == "empty_list":
                return []
            if kind == "empty_dict":
                return {}
            obj_type = resolved
        if obj_type in self.PRIMITIVE_TYPES:
            # mypy does not apply name mangling: the stock __deserialize_primitive is this name.
            return self._DefaultSerializer__deserialize_primitive(  # type: ignore[attr-defined]
                payload, obj_type)
        if obj_type is object:
            return payload
        if obj_type is date or obj_type is datetime:
            return self._DefaultSerializer__deserialize_datetime(payload, obj_type)
        return self._DefaultSerializer__deserialize_model(payload, obj_type)

    def _resolve(self, name: str) -> tuple[str, Any]:
        known = self._types.get(name)
        if known is not None:
            return known
        if name.startswith("list["):
            match = _LIST.match(name)
            known = ("list", match.group(1).strip()) if match else ("empty_list", None)
        elif name.startswith("dict("):
            match = _DICT.match(name)
            known = ("dict", match.group(2)) if match else ("empty_dict", None)
        elif name in self.NATIVE_TYPES_MAPPING:
            known = ("type", self.NATIVE_TYPES_MAPPING[name])
        else:
            # mypy does not apply name mangling: the stock __load_class_from_name is this name.
            load = self._DefaultSerializer__load_class_from_name  # type: ignore[attr-defined]
            known = ("type", load(name))
        self._types[name] = known
        return known

    def _DefaultSerializer__deserialize_datetime(self, payload: Any, obj_type: Any) -> Any:
        if isinstance(payload, str):
            try:
                moment = datetime.fromisoformat(payload)
            except ValueError:
                pass
            else:
                return moment.date() if obj_type is date else moment
        # mypy does not apply name mangling: the stock __deserialize_datetime is this name.
        stock = super()._DefaultSerializer__deserialize_datetime  # type: ignore[misc]
        return stock(payload, obj_type)

    def _DefaultSerializer__deserialize_model(self, payload: Any, obj_type: Any) -> Any:
        try:
            if issubclass(obj_type, Enum):
                return obj_type(payload)
            if not hasattr(obj_type, "deserialized_types"):
                return payload
            if hasattr(obj_type, "get_real_child_model"):
                # mypy does not apply name mangling: the stock __get_obj_by_discriminator.
                pick = self._DefaultSerializer__get_obj_by_discriminator  # type: ignore[attr-defined]
                obj_type = pick(payload, obj_type)
            plan = self._plans.get(obj_type)
            if plan is None:
                plan = self._plans[obj_type] = _plan(obj_type)
            fields, known = plan
            model = obj_type()
            for attribute, key, type_name in fields:
                if key in payload:
                    setattr(model, attribute, self._DefaultSerializer__deserialize(payload[key], type_name))
            for key in payload:
                if key not in known:
                    setattr(model, key, payload[key])
            return model
        except SerializationException:
            raise
        except Exception as exc:
            raise SerializationException(str(exc)) from exc


class _Model(Protocol):
    """An ask-sdk model class: its attributes' type names (and, optionally, JSON keys)."""

    deserialized_types: dict[str, str]


def _plan(model_class: type[_Model]) -> tuple[tuple[tuple[str, str, str], ...], frozenset[str]]:
    """The stock rule: every ``deserialized_types`` entry, under its ``attribute_map``
    name when it has one, else under its own name; other JSON keys are kept as-is."""
    types = model_class.deserialized_types
    names = dict(getattr(model_class, "attribute_map", {}) or {})
    for attribute in types:
        names.setdefault(attribute, attribute)
    fields = tuple((attribute, key, types[attribute]) for attribute, key in names.items())
    return fields, frozenset(names.values())
