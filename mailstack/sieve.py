"""Sieve scripts, read and rewritten with ``sievelib`` (DESIGN section 13).

A script's *rules* are its top-level commands: an ``if`` with its ``elsif`` / ``else`` branches is one rule,
and each top-level action outside a condition is one rule. Each rule is identified by a hash of its Sieve
text (``sieve:<sha1 prefix>``), so the same rule keeps its id across reads and a changed rule is a new one.

Mapped to contract v1 (DESIGN section 4):

- an unconditional ``redirect`` (top level) is the mailbox's **forwarding** (``forward_to``; ``:copy`` → keep
  a copy);
- every other rule is an **inbox rule**: ``fileinto`` → ``move_to_folder``, ``discard`` → ``delete``,
  ``addflag`` / ``setflag`` ``\\Seen`` → ``mark_as_read``, a conditional ``redirect`` → ``redirect_to``;
  conditions on ``header "subject"`` → ``subject_contains``, ``address`` / ``header "from"`` → ``from``,
  ``body`` → ``body_contains`` (the values of every test under ``anyof`` / ``allof`` are collected).

Rewriting (a remediation) drops the named rules, or every unconditional redirect, and regenerates the script
from the parse tree; the ``require`` line is kept as it was.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

from sievelib.parser import Parser


class SieveParseError(Exception):
    """The script is not Sieve ``sievelib`` can read."""


@dataclass
class Rule:
    rule_id: str
    name: str
    text: str
    conditions: dict[str, list[str]] = field(default_factory=dict)
    actions: dict[str, Any] = field(default_factory=dict)
    forwarding: tuple[str, bool] | None = None  # (address, keep a copy) for an unconditional redirect

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "conditions": self.conditions, "actions": self.actions, "enabled": True}


@dataclass
class Script:
    requires: list[Any]
    commands: list[Any]
    rules: list[tuple[Rule, list[Any]]]  # each rule with the top-level commands it is made of

    @property
    def inbox_rules(self) -> dict[str, Rule]:
        return {rule.rule_id: rule for rule, _ in self.rules if rule.forwarding is None}

    @property
    def forwarding(self) -> tuple[str, bool] | None:
        for rule, _ in self.rules:
            if rule.forwarding is not None:
                return rule.forwarding
        return None


def _unquote(value: Any) -> str:
    text = str(value)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return text.replace('\\"', '"').replace("\\\\", "\\")


def _strings(value: Any) -> list[str]:
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    return [_unquote(value)] if value is not None else []


def _text_of(commands: list[Any]) -> str:
    out = io.StringIO()
    for command in commands:
        command.tosieve(target=out)
    return out.getvalue()


def _collect_conditions(test: Any, conditions: dict[str, list[str]]) -> None:
    if test is None:
        return
    name = test.name
    args = test.arguments
    if name in ("anyof", "allof"):
        for child in args.get("tests", []):
            _collect_conditions(child, conditions)
        return
    if name == "not":
        return  # a negated condition does not say what the rule looks for
    keys = [k.lower() for k in _strings(args.get("header-names") or args.get("header-list"))]
    values = _strings(args.get("key-list"))
    if name == "header" and "subject" in keys:
        conditions.setdefault("subject_contains", []).extend(values)
    elif name in ("header", "address") and keys and set(keys) & {"from", "sender", "reply-to"}:
        conditions.setdefault("from", []).extend(values)
    elif name == "body":
        conditions.setdefault("body_contains", []).extend(values)


def _collect_actions(commands: list[Any], actions: dict[str, Any]) -> None:
    for command in commands:
        name = command.name
        args = command.arguments
        if name == "fileinto":
            actions["move_to_folder"] = _unquote(args.get("mailbox"))
        elif name == "discard":
            actions["delete"] = True
        elif name in ("addflag", "setflag"):
            flags = " ".join(_strings(args.get("list-of-flags"))).lower()
            if "\\seen" in flags:
                actions["mark_as_read"] = True
        elif name == "redirect":
            actions.setdefault("redirect_to", []).append(_unquote(args.get("address")).lower())
        if command.children:
            _collect_actions(command.children, actions)


def _rule_id(text: str) -> str:
    return "sieve:" + hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


def parse(text: str) -> Script:
    """The rules of a script; :class:`SieveParseError` when it cannot be read."""
    parser = Parser()
    if not text.strip():
        return Script([], [], [])
    if not parser.parse(text if text.endswith("\n") else text + "\n"):
        raise SieveParseError(parser.error or "unreadable Sieve script")
    requires = [c for c in parser.result if c.name == "require"]
    commands = [c for c in parser.result if c.name != "require"]
    groups: list[list[Any]] = []
    for command in commands:
        if command.name in ("elsif", "else") and groups and groups[-1][0].name == "if":
            groups[-1].append(command)
        else:
            groups.append([command])
    rules: list[tuple[Rule, list[Any]]] = []
    for number, group in enumerate(groups, start=1):
        text_of_rule = _text_of(group)
        head = group[0]
        conditions: dict[str, list[str]] = {}
        actions: dict[str, Any] = {}
        for command in group:
            _collect_conditions(command.arguments.get("test"), conditions)
        _collect_actions(group, actions)
        forwarding = None
        if head.name == "redirect":
            address = _unquote(head.arguments.get("address")).lower()
            forwarding = (address, any(_unquote(a) == ":copy" for a in _flat_args(head)))
        elif head.name in ("keep", "stop"):
            continue  # not a rule: the default delivery
        name = f"Sieve rule {number}"
        rules.append(
            (Rule(_rule_id(text_of_rule), name, text_of_rule, conditions, actions, forwarding), group)
        )
    return Script(requires, commands, rules)


def _flat_args(command: Any) -> list[Any]:
    values: list[Any] = []
    for value in command.arguments.values():
        values.extend(value if isinstance(value, list) else [value])
    if getattr(command, "extra_arguments", None):
        values.extend(command.extra_arguments.keys())
    return values


def rewrite_without(
    text: str, *, rule_ids: set[str] | frozenset[str] = frozenset(), forwarding: bool = False
) -> str:
    """The script without the rules ``rule_ids`` and, with ``forwarding``, without its unconditional
    redirects. The rest is regenerated from the parse tree."""
    script = parse(text)
    dropped: set[int] = set()
    for rule, group in script.rules:
        if rule.rule_id in rule_ids or (forwarding and rule.forwarding is not None):
            dropped.update(id(c) for c in group)
    kept = [c for c in script.commands if id(c) not in dropped]
    out = _text_of(script.requires) + _text_of(kept)
    return out if kept else out + "keep;\n"
