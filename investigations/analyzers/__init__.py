"""The analyzers of the compromised-user playbook (DESIGN section 6), in the order the playbook runs them.

Each is ``(ctx: Context) -> AnalyzerResult``; its module docstring states its rule. The playbook looks each
one up here by name when it runs it, so a test can replace one (``monkeypatch.setattr(analyzers, name, …)``).
"""

from .base import LOOKBACK, AnalyzerResult, Context, Risk
from .correlation import correlated_alerts
from .directory import delegations, forwarding, inbox_rules
from .lookalikes import lookalikes
from .mail import mail_clusters, sending_anomaly, sent_malware
from .sign_ins import sign_ins
from .verdict import verdict

ANALYZERS: tuple[str, ...] = (
    "correlated_alerts",
    "sending_anomaly",
    "sent_malware",
    "mail_clusters",
    "forwarding",
    "inbox_rules",
    "delegations",
    "sign_ins",
    "lookalikes",
    "verdict",
)
# The analyzers that gather evidence; if every one of them fails, the run has learnt nothing and is Failed
# (the verdict alone, over no evidence, would wrongly say "No threats found").
EVIDENCE_ANALYZERS: tuple[str, ...] = ANALYZERS[:-1]

__all__ = [
    "ANALYZERS",
    "EVIDENCE_ANALYZERS",
    "LOOKBACK",
    "AnalyzerResult",
    "Context",
    "Risk",
    "correlated_alerts",
    "delegations",
    "forwarding",
    "inbox_rules",
    "lookalikes",
    "mail_clusters",
    "sending_anomaly",
    "sent_malware",
    "sign_ins",
    "verdict",
]
