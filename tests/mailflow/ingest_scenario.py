"""One ingest scenario run on both backends by ``test_ingest_backends.py``: in-process on PostgreSQL and in a
subprocess on the embedded SQLite database. It exercises the compiled path, the Python path and every error
case of the contract, through the service (strict and lenient) and ``import_events``, and returns what a
caller sees, in JSON-ready form, so the two backends can be compared.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

from .events import delegation, forwarding, inbox_rule, mailbox_event, message, sign_in

ALICE = "alice@example.com"


def events() -> list[Any]:
    """Valid events of every type (compiled and Python paths), then one of every kind of error."""
    valid = [
        mailbox_event("mb-1", "Carol@Example.com", display_name="Carol", vip=True),
        message("m-1", "ALICE+tag@example.com", ["Bob@example.com", "x@partner.example.net"], subject="Hi"),
        message(
            "m-2", ALICE, ["bob@example.com"], minutes=1, urls=["https://a.example/x"], client_ip="10.0.0.1"
        ),
        message(
            "m-2", ALICE, ["bob@example.com"], minutes=1, urls=["https://a.example/x"], client_ip="10.0.0.1"
        ),
        message("m-3", ALICE, ["bob@example.com"], minutes=2, note="unknown field"),
        sign_in("s-1", ALICE, "2001:db8::1", country="nl", client_app="imap", result="success"),
        inbox_rule("r-1", ALICE, "rule-1", "created", actions={"forward_to": "x@else.example"}),
        forwarding("f-1", ALICE, "x@else.example"),
        delegation("d-1", ALICE, "bob@example.com", "full_access", "added"),
    ]
    invalid = [
        "not an object",
        {"id": "e-1", "time": "2025-03-03T09:00:00Z"},
        {"id": "e-2", "type": "nope", "time": "2025-03-03T09:00:00Z"},
        message("e-3", "not-an-address"),
        message("e-4", recipients=[]),
        message("e-5", recipients=["ok@example.com", "bad"]),
        message("e-6", size=-1),
        message("e-7", size=True),
        message("e-8", verdict="evil"),
        message("e-9", subject="nul\x00"),
        message("e-10", time="2025-03-03T09:00:00"),
        message("e-11", time="1900-01-01T00:00:00Z"),
        message("e-12", client_ip="999.1.1.1"),
        message("e-13", urls=[" "]),
        message("e-14", sender="someone@outside.example"),
        message("", ALICE),
        sign_in("e-15", ALICE, "not-an-ip"),
        sign_in("e-16", ALICE, country="NLD"),
        sign_in("e-17", ALICE, client_app="telnet"),
        inbox_rule("e-18", ALICE, "rule-2", "renamed"),
        forwarding("e-19", ALICE, "not an address"),
        delegation("e-20", ALICE, "bob@example.com", "everything", "added"),
    ]
    return valid + invalid


def run() -> dict[str, Any]:
    from django.core.management import CommandError, call_command

    from core.models import Tenant
    from mailboxes.models import InboxRule, Mailbox, SignIn
    from mailboxes.services import declare_accepted_domains
    from mailflow.ingest import LENIENT, STRICT, ingest_events, merge_message_details
    from mailflow.models import IngestedEvent, MessageEvent, SendingMinute

    tenant = Tenant.objects.default()
    declare_accepted_domains(tenant, ["example.com"])
    batch = events()
    strict = ingest_events(tenant, batch, mode=STRICT)
    stored_after_strict = IngestedEvent.objects.count()
    lenient = ingest_events(tenant, batch, mode=LENIENT)
    again = ingest_events(tenant, [message("m-1", ALICE, ["other@example.com"]), *batch[:3]], mode=LENIENT)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.ndjson"
        lines = [json.dumps(message(f"i-{n}", ALICE, ["bob@example.com"], minutes=n)) for n in range(30)]
        path.write_text("\n".join([*lines, lines[0], json.dumps(message("m-2", ALICE, ["z@example.com"]))]))
        out = io.StringIO()
        call_command("import_events", str(path), batch_size=7, stdout=out, stderr=io.StringIO())
        bad = Path(tmp) / "bad.ndjson"
        bad.write_text("\n".join([lines[0], "{", json.dumps(message("x", "nobody@outside.example"))]))
        err = io.StringIO()
        try:
            call_command("import_events", str(bad), stdout=io.StringIO(), stderr=err)
            refused = ""
        except CommandError as exc:  # what the operator reads
            refused = f"{exc} | {err.getvalue()}".replace(str(bad), "bad.ndjson")
    merged = merge_message_details(
        tenant, [message("m-3", ALICE, ["bob@example.com"], minutes=2, verdict="phish")]
    )
    message_row = MessageEvent.objects.get(event_id="m-1")
    return {
        "strict": [strict.errors, strict.warnings, strict.accepted, stored_after_strict],
        "lenient": [lenient.errors, lenient.summary(), lenient.rejected],
        "again": again.summary(),
        "import": out.getvalue().split(": ", 1)[1].split(" (")[0],
        "refused": refused,
        "counts": [
            IngestedEvent.objects.count(),
            MessageEvent.objects.count(),
            SignIn.objects.count(),
            InboxRule.objects.count(),
            Mailbox.objects.count(),
        ],
        "m-1": [
            message_row.recipients,
            message_row.internal_count,
            message_row.external_count,
            message_row.external_domains,
            message_row.sender.address,
        ],
        "merged": merged,
        "minutes": sorted(
            SendingMinute.objects.values_list(
                "sender__address", "minute", "internal", "external", "total", "bad"
            )
        ),
        "hashes": sorted(IngestedEvent.objects.values_list("event_id", "content_hash")),
    }
