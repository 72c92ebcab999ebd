"""The detectors, one module per alert policy kind (DESIGN section 5), keyed by ``AlertPolicy.Kind`` value.

Each is ``detect(policy, mailboxes, start, end) -> list[Detection]``: a pure function of the stored telemetry
and the policy for the users a batch touched (already in the policy's scope) and the batch's event-time
range. Each reads with a few bulk queries for the whole batch, never one per event; works on event time, so
events may arrive in any order; and names its evidence by event id, so running it twice adds nothing
(``alerts.services.raise_alert`` folds the detections into alerts). The restriction and admin-investigation
policies have no detector: the services that place a restriction or start an investigation raise their
alerts.
"""

from __future__ import annotations

from ..models import AlertPolicy
from . import (
    delegation,
    forwarding,
    forwarding_rule,
    inbox_manipulation,
    sending_limit,
    sending_pattern,
    sequence,
    sign_in,
)
from .common import Detector

DETECTORS: dict[str, Detector] = {
    AlertPolicy.Kind.SENDING_LIMIT.value: sending_limit.detect,
    AlertPolicy.Kind.SENDING_PATTERN.value: sending_pattern.detect,
    AlertPolicy.Kind.FORWARDING.value: forwarding.detect,
    AlertPolicy.Kind.FORWARDING_RULE.value: forwarding_rule.detect,
    AlertPolicy.Kind.INBOX_MANIPULATION.value: inbox_manipulation.detect,
    AlertPolicy.Kind.DELEGATION.value: delegation.detect,
    AlertPolicy.Kind.SIGN_IN.value: sign_in.detect,
    AlertPolicy.Kind.SEQUENCE.value: sequence.detect,
}

__all__ = ["DETECTORS", "Detector"]
