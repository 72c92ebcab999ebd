"""The investigation page as tabs at their own URLs: key findings on top, Undo next to a completed action on
the overview, clusters post-compromise and external first with the clean ones collapsed and a page per
cluster listing its messages, the log grouped by run, a graph whose every node is a link and whose remediated
entities are drawn as remediated; each tab's query count stays flat as its rows grow."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from investigations.models import AnalyzerRun, Finding, MailCluster, RemediationAction
from tests.investigations.action_builders import (
    EVIL,
    Type,
    forwarding_investigation,
    make_action,
    sent_messages,
)

pytestmark = pytest.mark.django_db
SERIAL = itertools.count(1000)
TABS = ("graph", "alerts", "mailbox", "evidence", "clusters", "log", "history")


@pytest.fixture
def investigation(tenant):
    return forwarding_investigation(tenant, alerted=True)


def _tab(investigation, tab: str) -> str:
    if tab == "overview":
        return reverse("console:investigation_detail", args=[investigation.pk])
    return reverse("console:investigation_tab", args=[investigation.pk, tab])


def _clean_cluster(investigation, n: int, *, external: int, minutes_ago: int) -> MailCluster:
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return MailCluster.objects.create(
        investigation=investigation,
        fingerprint=f"subject:{n}",
        basis="subject",
        label=f"Clean cluster {n}",
        verdict=Finding.Verdict.CLEAN,
        message_count=1,
        internal_recipients=1,
        external_recipients=external,
        first_at=at,
        last_at=at,
        event_ids=[],
    )


def test_the_overview_puts_key_findings_first_and_undo_next_to_the_completed_action(
    operator_client, investigation
):
    done = make_action(
        investigation,
        Type.TURN_OFF_FORWARDING,
        label=f"Forwarding to {EVIL}",
        status=RemediationAction.Status.COMPLETED,
        completed_at=timezone.now(),
        prior_state={"forward_to": EVIL, "keep_copy": True},
    )
    body = operator_client.get(_tab(investigation, "overview")).content.decode()
    assert body.index("Key findings") < body.index(">Status</h2>") < body.index("Decided actions")
    assert "Forwards every message to an external address first seen today" in body
    row = body[body.index(f'id="action-{done.pk}"') :]
    row = row[: row.index("</tr>")]
    assert reverse("console:action_undo", args=[done.pk]) in row
    history = operator_client.get(_tab(investigation, "history")).content.decode()
    assert "Undo…" not in history and 'id="bulk"' not in history


def test_clusters_put_post_compromise_external_mail_first_and_collapse_the_clean_rest(
    reader_client, investigation
):
    old = _clean_cluster(investigation, 1, external=0, minutes_ago=60 * 24 * 5)  # before the compromise
    lure = _clean_cluster(investigation, 2, external=40, minutes_ago=5)  # after, outside: the missed lure
    malicious = sent_messages(investigation.mailbox, investigation)
    body = reader_client.get(_tab(investigation, "clusters")).content.decode()
    shown, collapsed = body.split("<details", 1)
    assert shown.index(malicious.label) < shown.index(lure.label)
    assert old.label not in shown and old.label in collapsed
    assert "After the compromise began" in shown
    page = reader_client.get(reverse("console:investigation_cluster", args=[investigation.pk, malicious.pk]))
    html = page.content.decode()
    assert page.status_code == 200 and html.count("Your invoice is overdue") >= 3  # heading and two messages
    assert "msg-" in html


def test_the_log_groups_analyzer_runs_by_run(reader_client, investigation):
    now = timezone.now()
    for run in (1, 2):
        for analyzer in ("forwarding", "inbox_rules", "sign_ins"):
            AnalyzerRun.objects.create(
                investigation=investigation, run_number=run, analyzer=analyzer, started_at=now, outcome="ok"
            )
    body = reader_client.get(_tab(investigation, "log")).content.decode()
    assert body.count('<details class="run"') == 2
    assert body.index("Run 2 · 3 analyzers") < body.index("Run 1 · 3 analyzers")


def test_the_graph_links_every_node_and_draws_remediated_entities_as_remediated(reader_client, investigation):
    make_action(investigation, Type.TURN_OFF_FORWARDING, status=RemediationAction.Status.COMPLETED)
    body = reader_client.get(_tab(investigation, "graph")).content.decode()
    svg = body[body.index("<svg") : body.index("</svg>")]
    assert svg.count('<g class="node ') == svg.count("<a href=") > 0
    assert 'class="node node-remediated"' in svg and 'class="node node-malicious"' not in svg
    assert "…" not in svg.split("<title>")[-1] or "<tspan" in svg


def test_tabs_work_for_readers_and_refuse_users_without_a_role(reader_client, nobody_client, investigation):
    for tab in ("overview", *TABS):
        assert reader_client.get(_tab(investigation, tab)).status_code == 200, tab
        assert nobody_client.get(_tab(investigation, tab)).status_code == 403, tab


@pytest.mark.parametrize("tab", ["overview", *TABS])
def test_each_tab_costs_the_same_queries_for_few_or_many_rows(reader_client, investigation, tab):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert reader_client.get(_tab(investigation, tab)).status_code == 200
        return len(queries)

    def grow(n: int) -> None:
        now = timezone.now()
        for i in range(n):
            _clean_cluster(investigation, next(SERIAL), external=i, minutes_ago=i)
            AnalyzerRun.objects.create(
                investigation=investigation,
                run_number=i % 3 + 1,
                analyzer=f"a{i}",
                started_at=now,
                outcome="ok",
            )
            make_action(investigation, Type.REVOKE_SESSIONS, label=f"Sessions {i}", status="rejected")

    grow(2)
    few = count()
    grow(20)
    assert count() == few
