"""Herald's database models, one module per area. Tortoise loads them from here.

Schema changes go through Tortoise's migrations in ``appliance/migrations``:
change a model, then run ``scripts/makemigrations`` (see docs/development.md).
"""

from appliance.models.accounts import (
    AccessToken,
    EmailToken,
    Invite,
    LoginSession,
    RuntimeSetting,
    SetupToken,
    User,
)
from appliance.models.oauth import AuthorizationCode, OAuthClient
from appliance.models.printers import Event, Job, LinkRequest, Printer, StatusSample
from appliance.models.system import Lease, RateLimitWindow
from appliance.models.webhooks import Delivery, DeliveryAttempt, WebhookTarget

__all__ = [
    "AccessToken",
    "AuthorizationCode",
    "Delivery",
    "DeliveryAttempt",
    "EmailToken",
    "Event",
    "Invite",
    "Job",
    "Lease",
    "LinkRequest",
    "LoginSession",
    "OAuthClient",
    "Printer",
    "RateLimitWindow",
    "RuntimeSetting",
    "StatusSample",
    "SetupToken",
    "User",
    "WebhookTarget",
]
