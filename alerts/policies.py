"""The default alert policies of DESIGN section 5: names analysts know, severities, thresholds, ranges."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Threshold:
    default: int
    minimum: int
    maximum: int
    help: str


@dataclass(frozen=True)
class PolicyDefault:
    kind: str
    name: str
    severity: str
    category: str
    action: str
    investigate: str
    thresholds: dict[str, Threshold] = field(default_factory=dict)
    description: str = ""
    # A new breach after a release restricts again the same day (the release cap still applies).
    rerestrict_after_release: bool = False


SENDING_LIMIT = "sending_limit"
RESTRICTION = "restriction"
SENDING_PATTERN = "sending_pattern"
FORWARDING = "forwarding"
FORWARDING_RULE = "forwarding_rule"
INBOX_MANIPULATION = "inbox_manipulation"
DELEGATION = "delegation"
SIGN_IN = "sign_in"
ADMIN_INVESTIGATION = "admin_investigation"
SEQUENCE = "sequence"

DEFAULT_POLICIES: tuple[PolicyDefault, ...] = (
    PolicyDefault(
        SENDING_LIMIT,
        "Email sending limit exceeded",
        "medium",
        "Threat management",
        "restrict_until_next_day",
        "always",
        {
            "external_per_hour": Threshold(500, 0, 10_000, "External recipients in a rolling hour (0 = off)"),
            "internal_per_hour": Threshold(
                1_000, 0, 10_000, "Internal recipients in a rolling hour (0 = off)"
            ),
            "total_per_day": Threshold(1_000, 0, 10_000, "All recipients in a rolling 24 hours (0 = off)"),
        },
        "A user sent to more recipients than the outbound limits allow.",
        rerestrict_after_release=True,
    ),
    PolicyDefault(
        RESTRICTION,
        "User restricted from sending email",
        "high",
        "Threat management",
        "alert_only",
        "always",
        description=(
            "A restriction was placed on the user by a sending-limit policy or the policy service "
            "(the console's own restrictions, by hand or by an approved block sender, raise no alert)."
        ),
    ),
    PolicyDefault(
        SENDING_PATTERN,
        "Suspicious email sending patterns detected",
        "medium",
        "Threat management",
        "alert_only",
        "always",
        {
            "hourly_floor": Threshold(
                100, 0, 10_000, "An hour's recipients must exceed this floor (0 = off)"
            ),
            "baseline_multiplier": Threshold(3, 1, 100, "… and this multiple of the busiest hour of 7 days"),
            "learning_days": Threshold(7, 1, 30, "Days of the user's history needed before (a) applies"),
            "bad_share_percent": Threshold(30, 1, 100, "Share of 24 h mail verdicted spam/phish/malware"),
            "bad_min_count": Threshold(10, 1, 10_000, "… with at least this many such messages (0 = off)"),
            "first_contact_domains": Threshold(
                20, 0, 10_000, "External domains written to for the first time in an hour (0 = off)"
            ),
        },
        "A user's sending suddenly exceeds their own baseline, much of it is verdicted malicious, or it "
        "suddenly reaches many domains never written to before; links on or recipients at a lookalike of "
        "the tenant's domains raise the alert to high.",
    ),
    PolicyDefault(
        FORWARDING,
        "Suspicious email forwarding activity",
        "high",
        "Threat management",
        "alert_only",
        "always",
        description="External forwarding on a mailbox, or an inbox rule forwarding / redirecting outside.",
    ),
    PolicyDefault(
        FORWARDING_RULE,
        "Creation of forwarding/redirect rule",
        "informational",
        "Threat management",
        "alert_only",
        "never",
        description="An inbox rule that forwards or redirects mail was created or changed.",
    ),
    PolicyDefault(
        INBOX_MANIPULATION,
        "Suspicious inbox manipulation rule",
        "medium",
        "Threat management",
        "alert_only",
        "always",
        description="A rule that deletes, marks read or hides mail in a rarely used folder, above all "
        "on finance words.",
    ),
    PolicyDefault(
        DELEGATION,
        "Mailbox delegation added",
        "low",
        "Permissions",
        "alert_only",
        "when_other_alert_open",
        description="Full-access or send-as permission was granted on a mailbox.",
    ),
    PolicyDefault(
        SIGN_IN,
        "Activity from infrequent country / impossible travel",
        "medium",
        "Threat management",
        "alert_only",
        "when_other_alert_open",
        {
            "learning_days": Threshold(7, 1, 30, "Days of sign-in history needed before new countries alert"),
            "lookback_days": Threshold(30, 1, 365, "A country unseen for this many days is infrequent"),
            "max_speed_kmh": Threshold(900, 100, 5_000, "Faster travel between sign-ins is impossible"),
        },
        "A sign-in from a country new for the user, two sign-ins too far apart, or a legacy protocol.",
    ),
    PolicyDefault(
        ADMIN_INVESTIGATION,
        "Admin triggered user compromise investigation",
        "medium",
        "Threat management",
        "alert_only",
        "always",
        description="An operator started a compromised-user investigation by hand.",
    ),
    PolicyDefault(
        SEQUENCE,
        "Suspicious activity after an unusual sign-in",
        "medium",
        "Threat management",
        "alert_only",
        "always",
        {
            "window_minutes": Threshold(
                60, 5, 24 * 60, "Activity this long after the unusual sign-in counts"
            ),
            "first_contact_recipients": Threshold(
                20, 0, 10_000, "First-contact external recipients that make sending unusual (0 = off)"
            ),
            "lure_recipients": Threshold(
                20, 0, 10_000, "Recipients of finance-lure subjects that make sending unusual (0 = off)"
            ),
        },
        "An unusual sign-in (new country, impossible travel, legacy or unusual client) followed within the "
        "window by unusual sending (first-contact burst, lookalike links or recipients, finance lures, "
        "phish or malware) or by a mailbox change (rule, forwarding, delegation): one alert, high when "
        "a lookalike domain or forwarding is involved, even when each half is under its own threshold.",
    ),
)

DEFAULTS_BY_KIND = {policy.kind: policy for policy in DEFAULT_POLICIES}

FINANCE_WORDS = ("invoice", "payment", "wire", "bank", "remittance", "transfer", "payroll", "iban", "swift")
RARE_FOLDERS = ("rss feeds", "rss subscriptions", "conversation history", "notes", "junk email")
