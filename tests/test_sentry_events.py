"""Sentry events carry no issue text, token or secret (issue 14, item 6).

Sentry patches threads, logging and aiohttp for the whole process once initialised, so
the check runs in a child process of its own, with a transport that keeps the events.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.service_fixtures import WEBHOOK_SECRET

BODY = "Private issue text: the launch codes are 0000"
TOKEN = "ghs_" + "T" * 36
SLACK_TOKEN = "xoxb-1234567890-abcdefghij"

CHILD = """
import json, logging, sys
from pathlib import Path
import sentry_sdk
from sentry_sdk.transport import Transport
from bot.observability.logs import Redactor, init_sentry
from tests.service_fixtures import make_settings

BODY, TOKEN, SECRET, SLACK_TOKEN = json.loads(sys.stdin.readline())  # not argv: Sentry sends it

class Capturing(Transport):
    def __init__(self):
        super().__init__()
        self.items = []
    def capture_envelope(self, envelope):
        self.items += [i.get_bytes().decode("utf-8", "replace") for i in envelope.items]

settings = make_settings(
    Path(sys.argv[1]), webhook_secret=SECRET, sentry_dsn="https://k@sentry.example.org/1",
    slack_token=SLACK_TOKEN,
)
transport = Capturing()
assert init_sentry(settings, Redactor.from_settings(settings), transport=transport)

def handle(data, body):
    token, secret = TOKEN, SECRET
    raise RuntimeError(f"handler failed ({len(body)}, {len(token)}, {len(secret)})")

try:
    handle({"comment": {"body": BODY}}, BODY.encode())
except RuntimeError:
    sentry_sdk.capture_exception()
try:
    handle({"issue": {"title": BODY}}, BODY.encode())
except RuntimeError:
    logging.getLogger("bot.delivery.workers").exception("unexpected failure")
sentry_sdk.flush()
print(json.dumps(transport.items))
"""


def test_sentry_events_hold_no_body_token_secret_or_frame_variables(tmp_path: Path) -> None:
    secrets = [BODY, TOKEN, WEBHOOK_SECRET, SLACK_TOKEN]
    root = Path(__file__).resolve().parents[1]
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        input=json.dumps(secrets) + "\n",
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    items = json.loads(child.stdout.strip().splitlines()[-1])
    events = [json.loads(i) for i in items if i.startswith("{") and '"exception"' in i]
    assert len(events) == 2
    text = "\n".join(items)
    for secret in [*secrets, "launch codes"]:
        assert secret not in text
    assert '"vars"' not in text
