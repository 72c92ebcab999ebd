"""Lookalike domains: recognising a domain that imitates one of the tenant's accepted domains.

A domain *imitates* an accepted domain when it is not that organisation's own (same registrable domain, so the
tenant's subdomains are never lookalikes) and, comparing the registrable domains' names (the label before the
public suffix, from the Public Suffix List):

- **extra suffix**: it is the accepted domain with more labels after it (``contoso.example.co``);
- **other suffix**: the same name under another public suffix (``contoso.co`` for ``contoso.example``),
  for names of at least ``MIN_NAME`` characters;
- **homoglyphs / mixed scripts**: its name (internationalised ``xn--`` forms decoded) reads as the accepted
  name once look-alike characters are folded: Unicode confusables of Latin letters (``cоntoso`` with a
  Cyrillic ``о``) and the ASCII tricks ``rn``→``m``, ``vv``→``w``, ``0``→``o``, ``1``→``l``;
- **edit distance**: its name is at most one edit (insertion, deletion, substitution, transposition) from the
  accepted name (two from ``LONG_NAME`` characters on), for names of at least ``MIN_NAME`` characters;
- **added word**: its name is the accepted name with a word added by a hyphen or glued on
  (``contoso-billing``, ``securecontoso``), for names of at least ``MIN_ADDED_NAME`` characters.

:class:`LookalikeMatcher` answers for domains, URLs and addresses; it caches its answers, so a detector
builds one per batch (the tenant's accepted domains) and asks freely.
"""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from confusable_homoglyphs import confusables
from publicsuffixlist import PublicSuffixList
from rapidfuzz.distance import DamerauLevenshtein

if TYPE_CHECKING:
    from django.db.models import Q, QuerySet

MIN_NAME = 4
LONG_NAME = 10
MIN_ADDED_NAME = 5
EXTRA_SUFFIX = "extra suffix"
OTHER_SUFFIX = "same name under another suffix"
HOMOGLYPHS = "homoglyphs"
MIXED_SCRIPTS = "mixed scripts"
EDIT_DISTANCE = "edit distance"
ADDED_WORD = "added word"
_ASCII_TRICKS = (("rn", "m"), ("vv", "w"), ("0", "o"), ("1", "l"))


@dataclass(frozen=True)
class Lookalike:
    """A domain that imitates an accepted domain, and how."""

    domain: str
    imitates: str
    how: str

    def describe(self) -> str:
        return f"{self.domain} imitates {self.imitates} ({self.how})"

    def as_dict(self) -> dict[str, str]:
        return {"domain": self.domain, "imitates": self.imitates, "how": self.how}


@cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the list ships inside the package: no download


def _decode(domain: str) -> str:
    """The Unicode form of a domain (``xn--`` labels decoded); undecodable labels are kept as they are."""
    labels = []
    for label in domain.split("."):
        if label.startswith("xn--"):
            with contextlib.suppress(UnicodeError):  # a broken xn-- label is compared as it is
                label = label.encode("ascii").decode("idna")
        labels.append(label)
    return ".".join(labels)


def _split(domain: str) -> tuple[str, str, str]:
    """``(registrable domain, its name, public suffix)``; a bare suffix is its own registrable domain."""
    psl = _psl()
    suffix = psl.publicsuffix(domain) or domain.rpartition(".")[2]
    registrable = psl.privatesuffix(domain) or domain
    name = registrable[: -len(suffix) - 1] if registrable != suffix else registrable
    return registrable, name, suffix


@cache
def skeleton(name: str) -> str:
    """A name with look-alike characters folded to the Latin letters they imitate (lowercased)."""
    folded = []
    for char in unicodedata.normalize("NFKC", name.lower()):
        if char.isascii():
            folded.append(char)
            continue
        found = confusables.is_confusable(char, greedy=True, preferred_aliases=["latin"]) or []
        latin = [
            h["c"].lower()
            for item in found
            for h in item.get("homoglyphs", [])
            if h["c"].isascii() and h["c"].isalnum()
        ]
        folded.append(latin[0] if latin else char)
    text = "".join(folded)
    for trick, letter in _ASCII_TRICKS:
        text = text.replace(trick, letter)
    return text


class LookalikeMatcher:
    """Which domains imitate the given accepted domains (module docstring for the rules)."""

    def __init__(self, accepted: Iterable[str]) -> None:
        self.accepted = sorted({d.strip().lower().rstrip(".") for d in accepted if d and d.strip()})
        self._own = {_split(d)[0] for d in self.accepted}
        self._targets = [(d, *_split(d)) for d in self.accepted]
        self._cache: dict[str, Lookalike | None] = {}

    def domain(self, domain: str) -> Lookalike | None:
        """The lookalike a domain is, or None (own domains and their subdomains, and everything else)."""
        domain = (domain or "").strip().lower().rstrip(".")
        if domain in self._cache:
            return self._cache[domain]
        found = self._check(domain) if domain and "." in domain else None
        self._cache[domain] = found
        return found

    def url(self, url: str) -> Lookalike | None:
        text = (url or "").strip()
        try:
            host = urlsplit(text if "://" in text else f"http://{text}").hostname or ""
        except ValueError:
            return None
        return self.domain(host)

    def address(self, address: str) -> Lookalike | None:
        return self.domain((address or "").rpartition("@")[2])

    def in_urls(self, urls: Iterable[str]) -> list[Lookalike]:
        return _distinct(self.url(u) for u in urls if isinstance(u, str))

    def in_domains(self, domains: Iterable[str]) -> list[Lookalike]:
        return _distinct(self.domain(d) for d in domains if isinstance(d, str))

    def _check(self, domain: str) -> Lookalike | None:
        unicode = _decode(domain)
        registrable, name, suffix = _split(unicode)
        if registrable in self._own or _split(domain)[0] in self._own:
            return None
        folded = skeleton(name)
        for accepted, _, own_name, own_suffix in self._targets:
            how = self._how(unicode, name, suffix, folded, accepted, own_name, own_suffix)
            if how:
                return Lookalike(domain, accepted, how)
        return None

    @staticmethod
    def _how(
        domain: str, name: str, suffix: str, folded: str, accepted: str, own_name: str, own_suffix: str
    ) -> str:
        if domain.startswith(f"{accepted}."):
            return EXTRA_SUFFIX
        if name == own_name:
            return OTHER_SUFFIX if len(own_name) >= MIN_NAME and suffix != own_suffix else ""
        if folded == skeleton(own_name):
            return MIXED_SCRIPTS if confusables.is_mixed_script(name) else HOMOGLYPHS
        if len(own_name) >= MIN_NAME:
            allowed = 2 if len(own_name) >= LONG_NAME else 1
            edits = DamerauLevenshtein.distance(folded, own_name, score_cutoff=allowed)
            if edits <= allowed:
                return f"{EDIT_DISTANCE} {edits}"
        if len(own_name) >= MIN_ADDED_NAME and own_name in folded and folded != own_name:
            return ADDED_WORD
        return ""


def _distinct(found: Iterable[Lookalike | None]) -> list[Lookalike]:
    seen: dict[str, Lookalike] = {}
    for item in found:
        if item is not None:
            seen.setdefault(item.domain, item)
    return list(seen.values())


@dataclass(frozen=True)
class LookalikeMessage:
    """A sent message with a link on, or recipients at, a lookalike domain."""

    event_id: str
    at: datetime
    lookalikes: tuple[Lookalike, ...]


def sent_with_lookalikes(
    tenant_id: int, mailbox_ids: Iterable[int], start: datetime, end: datetime, matcher: LookalikeMatcher
) -> dict[int, list[LookalikeMessage]]:
    """Per user, the messages sent in ``[start, end]`` whose URLs or external recipients' domains are
    lookalikes, oldest first, from the messages that have a URL or an external recipient.

    On PostgreSQL the matcher is asked once per distinct URL and domain those messages name (one query), and
    only the messages that name a lookalike are read (none, most batches): a batch's messages repeat a
    handful of domains, so the cost follows the distinct names, not the messages. Elsewhere, every message
    is read and matched."""
    from django.db.models import Q

    from core.sql import AnyOf
    from mailflow.models import MessageEvent

    sent = MessageEvent.objects.filter(
        AnyOf("sender_id", list(mailbox_ids)), tenant_id=tenant_id, time__gte=start, time__lte=end
    ).filter(Q(external_count__gt=0) | ~Q(urls=[]))
    sent = sent.filter(_naming_a_lookalike(sent, matcher))
    rows = sent.order_by("sender_id", "time", "event_id").values_list(
        "sender_id", "event_id", "time", "urls", "external_domains"
    )
    found: dict[int, list[LookalikeMessage]] = {}
    for sender_id, event_id, at, urls, domains in rows.iterator(chunk_size=5_000):
        hits = _distinct([*matcher.in_urls(urls or ()), *matcher.in_domains(domains or ())])
        if hits:
            found.setdefault(sender_id, []).append(LookalikeMessage(event_id, at, tuple(hits)))
    return found


# The distinct strings of the messages' ``urls`` and ``external_domains`` arrays, which the matcher is asked
# of (non-string items and non-array values are skipped, as the matcher skips them). The messages are read
# once: a CTE referenced twice is computed once.
_NAMES = """
WITH m AS ({sent})
SELECT 'url', u.value #>> '{{}}' FROM m,
    jsonb_array_elements(CASE WHEN jsonb_typeof(m.urls) = 'array' THEN m.urls ELSE '[]' END) AS u
WHERE jsonb_typeof(u.value) = 'string'
UNION
SELECT 'domain', d.value #>> '{{}}' FROM m,
    jsonb_array_elements(
        CASE WHEN jsonb_typeof(m.external_domains) = 'array' THEN m.external_domains ELSE '[]' END
    ) AS d
WHERE jsonb_typeof(d.value) = 'string'
"""


def _naming_a_lookalike(sent: QuerySet, matcher: LookalikeMatcher) -> Q:
    """The filter of the messages of ``sent`` that name a lookalike URL or domain: on PostgreSQL, from the
    distinct names (:func:`_names_in`), matching nothing when none is a lookalike; elsewhere every message
    (each is matched as it is read)."""
    from django.db import connection
    from django.db.models import Q

    if connection.vendor != "postgresql":
        return Q()
    urls, domains = _names_in(sent)
    named = Q(pk__in=[])
    if lookalike_urls := [u for u in urls if matcher.url(u) is not None]:
        named |= Q(urls__has_any_keys=lookalike_urls)
    if lookalike_domains := [d for d in domains if matcher.domain(d) is not None]:
        named |= Q(external_domains__has_any_keys=lookalike_domains)
    return named


def _names_in(sent: QuerySet) -> tuple[list[str], list[str]]:
    """The distinct URLs and domains the messages of ``sent`` name (one query)."""
    from django.db import connection

    sql, params = sent.values("urls", "external_domains").query.sql_with_params()
    urls: list[str] = []
    domains: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute(_NAMES.format(sent=sql), params)
        for kind, name in cursor.fetchall():
            (urls if kind == "url" else domains).append(name)
    return urls, domains
