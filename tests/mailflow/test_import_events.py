"""``manage.py import_events``: validate the whole file first, then store it in batches, idempotently."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from mailboxes.models import AcceptedDomain, Mailbox
from mailflow.models import IngestedEvent, MessageEvent

from .events import mailbox_event, message, messages, sign_in

pytestmark = pytest.mark.django_db


def write_ndjson(path: Path, events: list, *, blank_every: int = 0) -> Path:
    with path.open("w") as out:
        for n, event in enumerate(events, start=1):
            out.write((event if isinstance(event, str) else json.dumps(event)) + "\n")
            if blank_every and n % blank_every == 0:
                out.write("\n")
    return path


def run(*args: str, **options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_events", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def test_a_valid_file_is_imported_in_batches_and_counted(accepted, tmp_path):
    path = write_ndjson(tmp_path / "events.ndjson", messages(250), blank_every=40)
    out, _ = run(str(path), "--batch-size", "100")
    assert MessageEvent.objects.count() == 250
    assert "250 accepted, 0 duplicate, 0 conflicting" in out
    assert "3 batches" in out
    assert "events/s" in out


def test_a_bad_line_at_the_end_of_a_1000_line_file_stores_nothing_and_names_the_line(accepted, tmp_path):
    events = messages(1000)
    events[999]["time"] = "2025-03-03 09:00"
    path = write_ndjson(tmp_path / "events.ndjson", events)
    with pytest.raises(CommandError, match="1 error"):
        run(str(path), "--batch-size", "100")
    assert not MessageEvent.objects.exists()
    assert not IngestedEvent.objects.exists()
    assert not Mailbox.objects.exists()


def test_errors_are_reported_by_line_number_counting_blank_lines(accepted, tmp_path):
    lines = [
        json.dumps(message("m-1")),
        "",
        '{"id": "m-2", "type": "message",',
        json.dumps({**message("m-3"), "size": -1}),
    ]
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(lines) + "\n")
    err = io.StringIO()
    with pytest.raises(CommandError, match="2 error"):
        call_command("import_events", str(path), stdout=io.StringIO(), stderr=err)
    assert "line 3: not valid JSON" in err.getvalue()
    assert "line 4: size: must be between 0" in err.getvalue()


def test_a_mailbox_event_anywhere_in_the_file_declares_its_domain(tenant, tmp_path):
    events = [message(f"m-{n}", "ann@newco.example", ["x@newco.example"]) for n in range(30)]
    events.append(mailbox_event("mb-1", "ann@newco.example", display_name="Ann"))
    path = write_ndjson(tmp_path / "events.ndjson", events)
    run(str(path), "--batch-size", "7")
    assert AcceptedDomain.objects.filter(tenant=tenant, domain="newco.example").exists()
    assert MessageEvent.objects.filter(internal_count=1).count() == 30
    assert Mailbox.objects.get(address="ann@newco.example").display_name == "Ann"


def test_an_address_outside_every_accepted_domain_is_an_error_on_its_line(accepted, tmp_path):
    path = write_ndjson(
        tmp_path / "events.ndjson", [message("m-1"), sign_in("s-1", "eve@elsewhere.example.org")]
    )
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_events", str(path), stdout=io.StringIO(), stderr=err)
    assert "line 2: user: eve@elsewhere.example.org is not a mailbox of the tenant" in err.getvalue()
    assert not MessageEvent.objects.exists()


def test_re_running_an_interrupted_import_completes_it(accepted, tmp_path):
    events = messages(300)
    write_ndjson(tmp_path / "first-part.ndjson", events[:120])
    run(str(tmp_path / "first-part.ndjson"))  # as if the import had stopped after 120 events
    path = write_ndjson(tmp_path / "events.ndjson", events)
    out, _ = run(str(path), "--batch-size", "50")
    assert "180 accepted, 120 duplicate, 0 conflicting" in out
    assert MessageEvent.objects.count() == 300


def test_conflicting_ids_are_counted_and_named(accepted, tmp_path):
    write_ndjson(tmp_path / "a.ndjson", [message("m-1", subject="first")])
    run(str(tmp_path / "a.ndjson"))
    path = write_ndjson(tmp_path / "b.ndjson", [message("m-1", subject="second"), message("m-2")])
    out, err = run(str(path))
    assert "1 accepted, 0 duplicate, 1 conflicting" in out
    assert "m-1" in err
    assert MessageEvent.objects.get(event_id="m-1").subject == "first"


def test_it_reads_standard_input(accepted):
    stdin = io.BytesIO("".join(json.dumps(e) + "\n" for e in messages(5)).encode())
    out, _ = run("-", stdin=stdin)
    assert "5 accepted" in out


def test_it_imports_into_the_named_tenant(other_tenant, tmp_path):
    path = write_ndjson(
        tmp_path / "events.ndjson",
        [mailbox_event("mb-1", "o@other.example"), message("m-1", "o@other.example")],
    )
    run(str(path), "--tenant", "other")
    assert MessageEvent.objects.get().tenant == other_tenant


def test_an_unknown_tenant_is_refused(tmp_path):
    path = write_ndjson(tmp_path / "events.ndjson", [message("m-1")])
    with pytest.raises(CommandError, match="No tenant with slug 'nope'"):
        run(str(path), "--tenant", "nope")


def test_unknown_fields_are_reported_as_warnings(accepted, tmp_path):
    path = write_ndjson(tmp_path / "events.ndjson", [message("m-1", colour="blue")])
    _, err = run(str(path))
    assert "1 warning(s)" in err and "line 1: colour: unknown field" in err


def _a_file_with_every_kind_of_finding(path: Path) -> Path:
    """Five chunks of 20 lines: a line that is not JSON, invalid fields, unknown fields (warnings), addresses
    of a domain declared only by a mailbox event near the end and of a domain never declared."""
    events: list = messages(100)
    events[3] = '{"id": "broken",'
    events[25]["size"] = -1
    events[47]["colour"] = "blue"
    events[48]["recipients"] = []
    for n in (10, 30, 50, 70):
        events[n] = message(f"late-{n}", "ann@newco.example", ["x@newco.example"])
    events[66] = sign_in("s-66", "eve@elsewhere.example.org")
    events[95] = mailbox_event("mb-1", "ann@newco.example")
    return write_ndjson(path, events, blank_every=33)


def test_validation_processes_report_what_one_process_reports(accepted, tmp_path):
    path = _a_file_with_every_kind_of_finding(tmp_path / "events.ndjson")
    answers = []
    for jobs in ("1", "2"):
        err = io.StringIO()
        with pytest.raises(CommandError) as refused:
            call_command(
                "import_events",
                str(path),
                "--batch-size",
                "20",
                "--jobs",
                jobs,
                stdout=io.StringIO(),
                stderr=err,
            )
        answers.append((str(refused.value), err.getvalue()))
    assert answers[0] == answers[1]
    assert "4 error(s)" in answers[0][0]
    assert "line 4: not valid JSON" in answers[0][1]
    assert "line 69: user: eve@elsewhere.example.org is not a mailbox of the tenant" in answers[0][1]
    assert "line 49: colour: unknown field" in answers[0][1]
    assert not MessageEvent.objects.exists()


def test_a_file_validated_by_two_processes_is_stored_whole(accepted, tmp_path):
    events = messages(95)
    events.insert(40, mailbox_event("mb-1", "ann@newco.example"))
    events += [message(f"late-{n}", "ann@newco.example", ["x@newco.example"]) for n in range(5)]
    path = write_ndjson(tmp_path / "events.ndjson", events, blank_every=17)
    out, _ = run(str(path), "--batch-size", "20", "--jobs", "2")
    assert "101 accepted, 0 duplicate, 0 conflicting" in out
    assert MessageEvent.objects.count() == 100
    assert MessageEvent.objects.filter(sender__address="ann@newco.example", internal_count=1).count() == 5
