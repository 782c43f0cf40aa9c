"""The one place where every handler module's Router is merged."""

from __future__ import annotations

from gidgethub import routing

from bot.delivery import housekeeping
from bot.dispatch import handlers as dispatch
from bot.mirror import handlers as mirror
from bot.triage import handlers as triage


def build_router() -> routing.Router:
    return routing.Router(housekeeping.router, mirror.router, triage.router, dispatch.router)
