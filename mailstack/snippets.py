"""The configuration each server needs to talk to the console, filled in for one connection (the Mail
servers page shows them; the README shows the same with placeholders). ``secret`` is the clear secret when
it was just generated, else a placeholder: the console keeps only its hash."""

from __future__ import annotations

import base64

EXPORTER_PLACEHOLDER = "<the Rspamd secret shown when it was generated>"
POLICY_PLACEHOLDER = "<the Dovecot secret shown when it was generated>"


def endpoint_urls(console_url: str, tenant_slug: str) -> dict[str, str]:
    base = f"{console_url.rstrip('/')}/hooks/mailstack/{tenant_slug}"
    return {"rspamd": f"{base}/rspamd", "dovecot": f"{base}/dovecot-policy"}


def rspamd(console_url: str, tenant_slug: str, secret: str = "") -> str:
    """``/etc/rspamd/local.d/metadata_exporter.conf``: every message of an authenticated sender, as JSON."""
    return f"""# /etc/rspamd/local.d/metadata_exporter.conf
rules {{
  SOC_CONSOLE {{
    backend = "http";
    url = "{endpoint_urls(console_url, tenant_slug)["rspamd"]}";
    formatter = "json";
    selector = "soc_authenticated";
    user = "rspamd";
    password = "{secret or EXPORTER_PLACEHOLDER}";
  }}
}}
custom_select {{
  soc_authenticated = <<EOD
return function(task)
  return task:get_user() ~= nil
end
EOD;
}}
"""


def dovecot(console_url: str, tenant_slug: str, secret: str = "") -> str:
    """``/etc/dovecot/conf.d/95-soc-console.conf``: the auth policy and the doveadm HTTP API."""
    if secret:
        header = "Basic " + base64.b64encode(f"dovecot:{secret}".encode()).decode()
    else:
        header = "Basic <base64 of dovecot:" + POLICY_PLACEHOLDER + ">"
    return f"""# /etc/dovecot/conf.d/95-soc-console.conf
auth_policy_server_url = {endpoint_urls(console_url, tenant_slug)["dovecot"]}
auth_policy_server_api_header = Authorization: {header}
auth_policy_hash_nonce = <a random string, the same on every Dovecot server>
auth_policy_report_after_auth = yes
# The console refuses disabled accounts and tarpits brute force; if it is down, logins go on:
auth_policy_reject_on_fail = no

# doveadm HTTP API for the console (Sieve, kick, move): listen where only the console reaches it.
doveadm_api_key = <MAILSTACK_DOVEADM_API_KEY>
service doveadm {{
  inet_listener http {{
    address = 127.0.0.1
    port = 8080
  }}
}}
# Soft-deleted messages go here (MAILSTACK_QUARANTINE_FOLDER).
namespace inbox {{
  mailbox Quarantine {{
    auto = create
  }}
}}
"""


def postfix(policy_listen: str = "127.0.0.1:10040") -> str:
    """``main.cf`` additions: queue ids that never repeat (the event id of each message), the policy
    service (restrictions, disabled accounts), Rspamd as milter."""
    policy = f"check_policy_service {{ inet:{policy_listen}, timeout=2s, default_action=DUNNO }}"
    return f"""# /etc/postfix/main.cf (additions)
enable_long_queue_ids = yes
smtpd_recipient_restrictions = {policy},
    permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_end_of_data_restrictions = {policy}
smtpd_milters = inet:127.0.0.1:11332
non_smtpd_milters = inet:127.0.0.1:11332
milter_default_action = accept
"""
