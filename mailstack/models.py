"""The self-hosted mail connection of a tenant (DESIGN section 13) and the Sieve state read from Dovecot.

A :class:`MailstackConnection` binds one console :class:`~core.models.Tenant` (connector kind ``mailstack``)
to one Postfix + Dovecot + Rspamd installation: where doveadm's HTTP API listens, and the hashes of the two
shared secrets the servers send to the console's endpoints (Rspamd's metadata exporter and Dovecot's
authentication policy). A secret is shown once when it is generated; only its SHA-256 is kept.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from core.models import PlatformConnection, Tenant


class MailstackConnection(PlatformConnection):
    """One self-hosted mail installation the console reads telemetry from and acts on. Its "Test" checks that
    doveadm is reachable with the key and that the endpoints answer."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="mailstack_connection")
    doveadm_url = models.URLField(
        "doveadm HTTP API URL",
        max_length=500,
        help_text="Dovecot's doveadm HTTP endpoint, e.g. http://127.0.0.1:8080/doveadm/v1",
    )
    exporter_secret_hash = models.CharField(max_length=64, blank=True)
    policy_secret_hash = models.CharField(max_length=64, blank=True)
    secrets_set_at = models.DateTimeField(null=True, blank=True)
    # The last Sieve read and its outcome.
    sieve_read_at = models.DateTimeField(null=True, blank=True)
    sieve_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"Mail servers of {self.tenant}"


class SieveScript(models.Model):
    """The last active Sieve script read for one mailbox, and what it was mapped to (rules by id, the
    forwarding), so a later read emits changes only."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    address = models.CharField(max_length=320)
    script_name = models.CharField(max_length=200, blank=True)
    script_hash = models.CharField(max_length=64, blank=True)
    # {rule_id: {"name", "conditions", "actions", "enabled"}}
    rules = models.JSONField(default=dict, blank=True)
    # {"forward_to": address or None, "keep_copy": bool}
    forwarding = models.JSONField(default=dict, blank=True)
    read_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["address"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "address"], name="mailstack_sieve_unique_mailbox"),
        ]

    def __str__(self) -> str:
        return f"Sieve of {self.address}"
