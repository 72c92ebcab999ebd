"""The event id of a message Postfix handled, derived alike by every source that sees it (the Postfix policy
service at END-OF-MESSAGE, Rspamd's exporter as ``qid``), so the sources make one event.

Long queue ids (``enable_long_queue_ids = yes``, e.g. ``4QxQ1B6ZkPz9sT3``) never repeat: the id is
``postfix:<queue id>``. Short ones (upper-case hex, the default) repeat over time, so the UTC day is added:
``postfix:<YYYYMMDD>:<queue id>`` (two sources straddling midnight then make two events, a rare cost).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_SHORT = re.compile(r"^[0-9A-F]{5,20}$")


def postfix_event_id(queue_id: str, at: datetime) -> str:
    queue_id = queue_id.strip()
    if _SHORT.match(queue_id):
        return f"postfix:{at.astimezone(UTC):%Y%m%d}:{queue_id}"
    return f"postfix:{queue_id}"
