"""The one place where every handler module's Router is merged."""

from __future__ import annotations

from gidgethub import routing

from bot.handlers import dispatch, meta, mirror, triage


def build_router() -> routing.Router:
    return routing.Router(meta.router, mirror.router, triage.router, dispatch.router)
