"""A private Postfix instance for the tests (RECIPES.md, "Postfix as a private test instance").

Its own ``main.cf`` / ``master.cf`` in a temporary directory: smtpd on 127.0.0.1:<free port>, every message
accepted then discarded, the policy service consulted at RCPT and at END-OF-DATA with ``default_action=DUNNO``
(so a dead policy service does not defer mail), ``mynetworks`` = 127.0.0.0/8, logs in ``<dir>/maillog``.
"""

from __future__ import annotations

import re
import shutil
import smtplib
import socket
import subprocess
import time
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostfixInstance:
    """``start()`` / ``stop()`` one private instance that asks the policy service on ``policy_port``."""

    def __init__(self, root: Path, policy_port: int) -> None:
        self.root = root
        self.config = root / "etc"
        self.policy_port = policy_port
        self.smtp_port = free_port()

    def write_config(self) -> None:
        self.config.mkdir(parents=True)
        (self.root / "queue").mkdir()
        data = self.root / "data"
        data.mkdir()
        shutil.chown(data, "postfix")
        policy = (
            f"check_policy_service {{ inet:127.0.0.1:{self.policy_port}, timeout=2s, default_action=DUNNO }}"
        )
        main = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.root / "queue"),
            "data_directory": str(data),
            "myhostname": "policy-test.localdomain",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "relay_domains": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "default_transport": "discard:",
            "local_transport": "discard:",
            "relay_transport": "discard:",
            "maillog_file": str(self.root / "maillog"),
            "maillog_file_prefixes": f"/var, /dev/stdout, {self.root}",
            "smtputf8_enable": "no",
            "smtpd_recipient_restrictions": f"{policy}, permit_mynetworks, reject_unauth_destination",
            "smtpd_end_of_data_restrictions": policy,
        }
        (self.config / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        master = []
        for line in Path("/etc/postfix/master.cf").read_text().splitlines():
            fields = line.split()
            if line.startswith("smtp ") and fields[1] == "inet":
                fields[0] = f"127.0.0.1:{self.smtp_port}"
            if len(fields) >= 8 and not line.startswith(("#", " ", "\t")):
                fields[4] = "n"  # chroot: no (the temp dir is not a chroot jail)
                line = " ".join(fields)
            master.append(line)
        (self.config / "master.cf").write_text("\n".join(master) + "\n")

    def _postfix(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(  # noqa: S603 - fixed binary and arguments
            [POSTFIX, "-c", str(self.config), *args], capture_output=True, text=True, timeout=60, check=False
        )

    def start(self) -> None:
        self.write_config()
        done = self._postfix("set-permissions")
        if done.returncode != 0:
            raise RuntimeError(f"postfix set-permissions failed: {done.stderr}")
        done = self._postfix("start")
        if done.returncode != 0:
            raise RuntimeError(f"postfix start failed: {done.stderr}\n{self.log()}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=5) as smtp:
                    smtp.noop()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"postfix did not start listening on {self.smtp_port}:\n{self.log()}")

    def stop(self) -> None:
        self._postfix("stop")

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else "(no maillog)"

    def send(self, sender: str, recipients: list[str]) -> dict:
        """Send one message from 127.0.0.1 (a trusted network); raises smtplib's errors on a refusal."""
        body = f"From: {sender}\r\nTo: {', '.join(recipients)}\r\nSubject: test\r\n\r\nHello.\r\n"
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as smtp:
            return smtp.sendmail(sender, recipients, body)


def smtp_code(error: smtplib.SMTPException) -> tuple[int, str]:
    """The code and text of a refusal, whichever smtplib exception carries it."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(error.recipients.values()))
    else:
        code, text = error.smtp_code, error.smtp_error
    text = text.decode() if isinstance(text, bytes) else text
    return code, re.sub(r"\s+", " ", text)
