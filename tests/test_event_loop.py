"""`serve` picks its event loop from BOT_EVENT_LOOP: uvloop only when asked and importable."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from bot.cli.main import event_loop

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


def test_asyncio_leaves_the_loop_to_aiohttp() -> None:
    assert event_loop("asyncio") is None


@pytest.mark.parametrize("choice", ["auto", "uvloop"])
def test_uvloop_when_installed_else_asyncio(choice: str) -> None:
    loop = event_loop(choice)
    try:
        if HAS_UVLOOP:
            assert loop is not None and type(loop).__module__.startswith("uvloop")
            assert isinstance(loop, asyncio.AbstractEventLoop)
        else:
            assert loop is None
    finally:
        if loop is not None:
            loop.close()
