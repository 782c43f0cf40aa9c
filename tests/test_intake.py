"""Webhook intake over real HTTP on loopback: verification, storage, routing, bad input."""

from __future__ import annotations

import json

import pytest

from bot.config.settings import Settings
from bot.web.intake import Rejection, signature_for, verify_signature
from tests.service_fixtures import WEBHOOK_SECRET, delivery_rows, example, send, settled, signed

GITHUB_VECTOR_SECRET = "It's a Secret to Everybody"
GITHUB_VECTOR_PAYLOAD = b"Hello, World!"
GITHUB_VECTOR_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_github_published_signature_vector() -> None:
    assert signature_for(GITHUB_VECTOR_SECRET, GITHUB_VECTOR_PAYLOAD) == GITHUB_VECTOR_SIGNATURE
    verify_signature(GITHUB_VECTOR_SECRET, GITHUB_VECTOR_PAYLOAD, GITHUB_VECTOR_SIGNATURE)
    with pytest.raises(Rejection):
        verify_signature(
            GITHUB_VECTOR_SECRET, GITHUB_VECTOR_PAYLOAD + b" ", GITHUB_VECTOR_SIGNATURE
        )


EXAMPLES = [
    ("ping", "ping"),
    ("issues", "issues.opened"),
    ("issues", "issues.labeled"),
    ("issues", "issues.edited"),
    ("issue_comment", "issue_comment.created"),
    ("pull_request", "pull_request.opened"),
    ("pull_request", "pull_request.closed"),
    ("installation", "installation.created"),
]


@pytest.mark.parametrize(("event", "name"), EXAMPLES)
async def test_real_example_payloads_are_accepted_stored_and_routed(
    bot_client, settings: Settings, event: str, name: str
) -> None:
    status, answer, delivery = await send(bot_client, event, example(name))
    assert status == (200 if event == "ping" else 202), answer
    rows = await settled(settings.db, [delivery])
    row = rows[delivery]
    assert row["event"] == event
    assert row["status"] in ("done", "ignored")
    assert row["completions"] == 1
    payload = example(name)
    if "issue" in payload or "pull_request" in payload:
        number = (payload.get("issue") or payload.get("pull_request"))["number"]
        assert row["subject"] == f"{payload['repository']['full_name']}#{number}"


async def test_ping_and_installation_are_routed_to_a_handler(
    bot_client, settings: Settings
) -> None:
    ids = [
        (await send(bot_client, e, example(n)))[2]
        for e, n in [("ping", "ping"), ("installation", "installation.created")]
    ]
    rows = await settled(settings.db, ids)
    assert {r["status"] for r in rows.values()} == {"done"}


async def test_unknown_event_is_recorded_as_ignored_not_an_error(
    bot_client, settings: Settings
) -> None:
    status, _, delivery = await send(
        bot_client, "sponsorship", {"action": "created", "sponsorship": {}}
    )
    assert status == 202
    rows = await settled(settings.db, [delivery])
    assert rows[delivery]["status"] == "ignored"
    assert rows[delivery]["last_error"] is None


async def test_same_delivery_id_twice_is_a_duplicate_and_processed_once(
    bot_client, settings: Settings
) -> None:
    payload = example("issues.opened")
    first = await send(bot_client, "issues", payload, delivery="dup-1")
    second = await send(bot_client, "issues", payload, delivery="dup-1")
    assert first[0] == 202
    assert second[0] == 200 and second[1]["status"] == "duplicate"
    rows = await settled(settings.db, ["dup-1"])
    assert len(delivery_rows(settings.db)) == 1
    assert rows["dup-1"]["completions"] == 1


# --- bad input: one test each, and nothing stored --------------------------------------


async def _post(client, body: bytes, headers: dict[str, str]):
    response = await client.post("/webhook", data=body, headers=headers)
    return response.status, await response.json()


async def test_missing_signature_is_401_and_nothing_stored(bot_client, settings: Settings) -> None:
    body, headers = signed("issues", example("issues.opened"))
    del headers["X-Hub-Signature-256"]
    status, answer = await _post(bot_client, body, headers)
    assert status == 401 and "X-Hub-Signature-256" in answer["reason"]
    assert delivery_rows(settings.db) == []


async def test_wrong_signature_is_401_and_nothing_stored(bot_client, settings: Settings) -> None:
    body, headers = signed("issues", example("issues.opened"), secret="not-the-secret")
    status, _ = await _post(bot_client, body, headers)
    assert status == 401
    assert delivery_rows(settings.db) == []


async def test_sha1_only_signature_is_refused(bot_client, settings: Settings) -> None:
    import hashlib
    import hmac

    body, headers = signed("issues", example("issues.opened"))
    del headers["X-Hub-Signature-256"]
    headers["X-Hub-Signature"] = (
        "sha1=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha1).hexdigest()
    )
    status, _ = await _post(bot_client, body, headers)
    assert status == 401
    assert delivery_rows(settings.db) == []


async def test_body_over_25_mb_is_413_without_reading_it(bot_client, settings: Settings) -> None:
    body, headers = signed("issues", b"{" + b" " * (30 * 1024 * 1024) + b"}")
    status, answer = await _post(bot_client, body, headers)
    assert status == 413
    assert delivery_rows(settings.db) == []


async def test_chunked_body_over_the_cap_is_413(bot_client, settings: Settings) -> None:
    async def chunks():
        for _ in range(30):
            yield b" " * (1024 * 1024)

    _, headers = signed("issues", b"{}")
    response = await bot_client.post("/webhook", data=chunks(), headers=headers)
    assert response.status == 413
    assert delivery_rows(settings.db) == []


async def test_truncated_json_is_400(bot_client, settings: Settings) -> None:
    raw = json.dumps(example("issues.opened")).encode()
    body, headers = signed("issues", raw[: len(raw) // 2])
    status, answer = await _post(bot_client, body, headers)
    assert status == 400 and "JSON" in answer["reason"]
    assert delivery_rows(settings.db) == []


async def test_json_that_is_not_an_object_is_400(bot_client, settings: Settings) -> None:
    body, headers = signed("issues", b"[1, 2, 3]")
    status, answer = await _post(bot_client, body, headers)
    assert status == 400 and "object" in answer["reason"]
    assert delivery_rows(settings.db) == []


async def test_invalid_utf8_is_400(bot_client, settings: Settings) -> None:
    body, headers = signed("issues", b'{"a": "\xff\xfe"}')
    status, _ = await _post(bot_client, body, headers)
    assert status == 400
    assert delivery_rows(settings.db) == []


@pytest.mark.parametrize("header", ["X-GitHub-Event", "X-GitHub-Delivery"])
async def test_missing_event_or_delivery_header_is_400(
    bot_client, settings: Settings, header: str
) -> None:
    body, headers = signed("issues", example("issues.opened"))
    del headers[header]
    status, answer = await _post(bot_client, body, headers)
    assert status == 400 and header in answer["reason"]
    assert delivery_rows(settings.db) == []


async def test_health_readiness_and_metrics(bot_client, settings: Settings) -> None:
    assert (await bot_client.get("/healthz")).status == 200
    ready = await bot_client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["workers_running"] is True
    _, _, delivery = await send(bot_client, "ping", example("ping"))
    await settled(settings.db, [delivery])
    text = await (await bot_client.get("/metrics")).text()
    assert 'agent_dispatch_deliveries_total{event="ping",status="accepted"} 1.0' in text
    assert 'agent_dispatch_deliveries_total{event="ping",status="done"} 1.0' in text
    assert "agent_dispatch_queue_depth 0.0" in text
    assert "agent_dispatch_handler_seconds_bucket" in text


async def test_readiness_fails_when_workers_are_not_running(bot_client) -> None:
    from bot.web.app import POOL

    await bot_client.app[POOL].stop()
    response = await bot_client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["workers_running"] is False
