"""Signed but odd payloads: stored or refused with 400, never a 500, never failing a neighbour."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from bot.config.settings import Settings
from bot.delivery.inbox import Delivery, Inbox, describe
from tests.service_fixtures import delivery_rows, example, send, settled


def _labeled(**changes: Any) -> dict[str, Any]:
    payload = copy.deepcopy(example("issues.labeled"))
    payload["installation"] = {"id": 1}
    payload.update(changes)
    return payload


def _nested(depth: int) -> bytes:
    return b'{"action": "opened", "x": ' + b"[" * depth + b"]" * depth + b"}"


ODD_BODIES: list[tuple[str, bytes]] = [
    ("nested 10k levels", _nested(10_000)),
    (
        "lone surrogate in full_name",
        json.dumps(_labeled(repository={"full_name": "octo/\ud800", "id": 1})).encode(),
    ),
    ("installation id 10^25", json.dumps(_labeled(installation={"id": 10**25})).encode()),
    ("negative installation id", json.dumps(_labeled(installation={"id": -1})).encode()),
    ("action an object", json.dumps(_labeled(action={"a": 1})).encode()),
    ("action a list", json.dumps(_labeled(action=["labeled"])).encode()),
    ("installation a string", json.dumps(_labeled(installation="1")).encode()),
    ("repository a list", json.dumps(_labeled(repository=[1])).encode()),
    ("full_name a number", json.dumps(_labeled(repository={"full_name": 7})).encode()),
    ("issue number huge", json.dumps(_labeled(issue={"number": 10**30})).encode()),
    ("issue number a string", json.dumps(_labeled(issue={"number": "12"})).encode()),
    ("issue number a bool", json.dumps(_labeled(issue={"number": True})).encode()),
    ("issue a string", json.dumps(_labeled(issue="#12")).encode()),
    ("sender login a list", json.dumps(_labeled(sender={"login": [], "type": "User"})).encode()),
    ("label a number", json.dumps(_labeled(label=5)).encode()),
    ("float number", json.dumps(_labeled(issue={"number": 1.5})).encode()),
    ("nan installation", b'{"action": "opened", "installation": {"id": NaN}}'),
]


@pytest.mark.parametrize(("name", "body"), ODD_BODIES, ids=[n for n, _ in ODD_BODIES])
async def test_an_odd_signed_payload_is_refused_with_400_or_stored(
    bot_client, settings: Settings, name: str, body: bytes
) -> None:
    status, answer, delivery = await send(bot_client, "issues", body)
    assert status in (202, 400), (status, answer)
    if status == 202:
        rows = await settled(settings.db, [delivery])
        assert rows[delivery]["status"] in ("done", "ignored", "dead")
    else:
        assert not [r for r in delivery_rows(settings.db) if r["id"] == delivery]


async def test_odd_payloads_never_fail_the_good_ones_sent_at_the_same_moment(
    bot_client, settings: Settings
) -> None:
    good = example("issues.opened")
    sends = []
    for i in range(30):
        _, body = ODD_BODIES[i % len(ODD_BODIES)]
        sends.append(send(bot_client, "issues", body))
        sends.append(send(bot_client, "issues", good))
    answers = await asyncio.gather(*sends)
    assert all(status in (202, 400) for status, _, _ in answers), answers
    good_ids = [d for i, (status, _, d) in enumerate(answers) if i % 2 == 1]
    assert all(answers[i][0] == 202 for i in range(1, len(answers), 2))
    rows = await settled(settings.db, good_ids)
    assert {r["status"] for r in rows.values()} <= {"done", "ignored"}


async def test_a_row_the_database_refuses_fails_alone_in_its_group_commit(
    tmp_path: Path,
) -> None:
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    inbox.start()
    try:
        now = time.time()
        good = [
            describe("issues", {"action": "opened"}, f"good-{i}", b"{}", now=now, delay=0)
            for i in range(5)
        ]
        # Built by hand, past describe(): an integer SQLite cannot hold.
        bad = Delivery(id="bad", event="issues", payload=b"{}", installation_id=10**25)
        results = await asyncio.gather(
            *(inbox.add(d) for d in [good[0], good[1], bad, good[2], good[3], good[4]]),
            return_exceptions=True,
        )
        assert results[:2] == [True, True] and results[3:] == [True, True, True]
        assert isinstance(results[2], Exception)
        stored = {r["id"] for r in delivery_rows(tmp_path / "inbox.sqlite3")}
        assert stored == {f"good-{i}" for i in range(5)}
    finally:
        await inbox.close()
