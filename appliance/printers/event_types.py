"""The event vocabulary: every event type Herald knows, who sends it, and its OctoPrint-Webhooks names.

The schemas (what the plugin may post), the read API's filter, the webhooks (topics,
default messages, subscriptions) and the printers area all take their words from here,
so a new event type is added in one place (and in docs/printers.md's table).
"""

from __future__ import annotations

from typing import Final

# type -> (OctoPrint-Webhooks topic, its default message: OctoPrint-Webhooks' own text where it has
# the event; a message is a template, so @params in it are filled in)
EVENT_TOPICS: Final[dict[str, tuple[str, str]]] = {
    "print.started": ("Print Started", "Your print has started."),
    "print.done": ("Print Done", "Your print is done."),
    "print.failed": ("Print Failed", "Something went wrong and your print has failed."),
    "print.cancelled": ("Print Cancelled", "Your print has been cancelled."),
    "print.paused": ("Print Paused", "Your print has paused. You might need to change the filament color."),
    "print.resumed": ("Print Resumed", "Your print has resumed."),
    "print.progress": ("Print Progress", "Your print is @percentCompleteMilestone % complete."),
    "printer.user_action_needed": ("User Action Needed",
                                   "User action needed. You might need to change the filament color."),
    "printer.error": ("Error", "There was an error."),
    "printer.offline": ("Printer Offline", "Your printer has stopped checking in."),
    "printer.online": ("Printer Online", "Your printer is back online."),
    # Herald's own: a pause, resume or cancel sent from Herald (relay/control.py), with its source and result.
    "printer.command": ("Printer Command", "Herald sent your printer a command."),
}
EVENT_TYPES: Final = tuple(EVENT_TOPICS)

# Herald records these itself; a plugin may not post them.
HERALD_EVENT_TYPES: Final = ("printer.offline", "printer.online", "printer.command")
PLUGIN_EVENT_TYPES: Final = tuple(t for t in EVENT_TYPES if t not in HERALD_EVENT_TYPES)

# OctoEverywhere's notification event numbers (App Connections' InclusiveEventTypesFilter and
# the @eventNumber webhook param) -> the Herald event types each stands for.
APP_EVENT_NUMBERS: Final[dict[int, tuple[str, ...]]] = {
    1: ("print.started",),
    2: ("print.done",),
    3: ("print.failed", "print.cancelled"),
    4: ("print.paused",),
    5: ("print.resumed",),
    6: ("print.progress",),
    9: ("printer.error",),
    12: ("printer.user_action_needed",),
}
APP_TEST_EVENT_NUMBER: Final = 16
EVENT_NUMBER_OF: Final[dict[str, int]] = {t: n for n, types in APP_EVENT_NUMBERS.items() for t in types}


# OctoPrint's printer states as the status contract names them (``state_id``).
STATE_IDS: Final = (
    "offline", "connecting", "operational", "printing", "pausing", "paused",
    "resuming", "cancelling", "finishing", "error",
)
# The states in which a job is under way (its progress means something).
JOB_ACTIVE: Final = frozenset({"printing", "pausing", "paused", "resuming", "finishing", "cancelling"})


def topic_of(event_type: str) -> str:
    """The OctoPrint-Webhooks topic ("Print Done"); an unknown type stands for itself."""
    return EVENT_TOPICS.get(event_type, (event_type, event_type))[0]
