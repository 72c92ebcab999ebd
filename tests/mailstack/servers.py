"""The real mail servers for the self-hosted mail tests (../shared/RECIPES-mailstack.md): Dovecot (IMAP,
LMTP, ManageSieve, doveadm HTTP API, the console's auth policy), a private Redis for Rspamd, Rspamd (Postfix's
milter, its metadata exporter posting to the console) and Postfix (submission with Dovecot SASL, the Rspamd
milter, the console's policy service), plus an SMTP sink for mail that leaves. Each is started from Debian's
packages with its own configuration in a 0755 temporary directory, on the recipe's loopback ports, and
stopped by PID at the end of the session.

Rspamd compiles its hyperscan databases for about 12 s on a cold start: the ``*.hs*`` files are kept in
``var/rspamd-hs-cache`` between sessions, which brings the start down to under a second.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import imaplib
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
import urllib.request
from email.message import EmailMessage
from pathlib import Path

from mailstack import snippets

IMAP_PORT = 10143
LMTP_PORT = 10024
MANAGESIEVE_PORT = 10419
DOVEADM_PORT = 10880
RSPAMD_MILTER_PORT = 11332
RSPAMD_NORMAL_PORT = 11333
RSPAMD_CONTROLLER_PORT = 11334
SUBMISSION_PORT = 10587
SMTP_PORT = 10025
SINK_PORT = 10026
RSPAMD_REDIS_PORT = 16379

DOMAIN = "example.test"
USERS = {"ann": "annpass", "bob": "bobpass", "carol": "carolpass"}
DOVEADM_API_KEY = "test-api-key"
EXPORTER_SECRET = "test-exporter-secret"
POLICY_SECRET = "test-policy-secret"
BINARIES = (
    "/usr/sbin/dovecot",
    "/usr/bin/doveadm",
    "/usr/bin/rspamd",
    "/usr/sbin/postfix",
    "/usr/bin/redis-server",
)


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def wait_http(url: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=1) as response,  # noqa: S310 - a fixed loopback URL
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer after {timeout}s")


def basic_header(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


class MailStack:
    """The servers, configured to call the console at ``console_url`` (``http://127.0.0.1:<port>``) and the
    Postfix policy service at ``policy_port``."""

    def __init__(self, console_url: str, policy_port: int, hs_cache: Path) -> None:
        self.console_url = console_url.rstrip("/")
        self.policy_port = policy_port
        self.hs_cache = hs_cache
        self.root = Path(tempfile.mkdtemp(prefix="soc-mail-", dir="/tmp"))
        self.root.chmod(0o755)
        self.conf = self.root / "conf"
        self.run = self.root / "run"
        self.dovecot_conf = self.conf / "dovecot.conf"
        self.postfix_conf = self.conf / "postfix"
        self.rspamd_dir = self.run / "rspamd"
        self.processes: dict[str, subprocess.Popen] = {}
        self.sink = None
        self.timings: dict[str, float] = {}

    # -- configuration

    def write_config(self) -> None:
        for path in (
            self.conf,
            self.run,
            self.postfix_conf,
            self.conf / "rspamd" / "local.d",
            self.run / "mail",
        ):
            path.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.run / "mail", 5000, 5000)
        (self.conf / "users").write_text(
            "".join(f"{name}@{DOMAIN}:{{PLAIN}}{password}::::::\n" for name, password in USERS.items())
        )
        self._write_dovecot()
        self._write_rspamd()
        self._write_postfix()

    def _write_dovecot(self) -> None:
        t = self.root
        policy_url = f"{self.console_url}/hooks/mailstack/default/dovecot-policy"
        self.dovecot_conf.write_text(
            f"""instance_name = soc-test-dovecot
base_dir = {t}/run/dovecot
state_dir = {t}/run/dovecot-state
log_path = {t}/run/dovecot.log
protocols = imap lmtp sieve
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {t}/conf/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {t}/conf/users
  default_fields = uid=5000 gid=5000 home={t}/run/mail/%d/%n
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Quarantine {{
    auto = create
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {IMAP_PORT}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {LMTP_PORT}
  }}
}}
service managesieve-login {{
  inet_listener sieve {{
    address = 127.0.0.1
    port = {MANAGESIEVE_PORT}
  }}
}}
service auth {{
  unix_listener {t}/run/dovecot-auth-postfix {{
    mode = 0666
  }}
}}
service doveadm {{
  inet_listener http {{
    address = 127.0.0.1
    port = {DOVEADM_PORT}
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
doveadm_api_key = {DOVEADM_API_KEY}
submission_host = 127.0.0.1:{SINK_PORT}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
protocol lda {{
  mail_plugins = $mail_plugins sieve
}}
plugin {{
  sieve = file:~/sieve;active=~/.dovecot.sieve
}}
auth_policy_server_url = {policy_url}
auth_policy_server_api_header = Authorization: {basic_header("dovecot", POLICY_SECRET)}
auth_policy_hash_nonce = test-nonce-123
auth_policy_report_after_auth = yes
"""
        )

    def _write_rspamd(self) -> None:
        local = self.conf / "rspamd"
        (local / "rspamd.conf").write_text(
            f""".include "$CONFDIR/common.conf"
options {{
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
}}
logging {{
    type = "file";
    filename = "$LOGDIR/rspamd.log";
    level = "warning";
}}
worker "normal" {{
    bind_socket = "127.0.0.1:{RSPAMD_NORMAL_PORT}";
    .include "$CONFDIR/worker-normal.inc"
    count = 1;
}}
worker "controller" {{
    bind_socket = "127.0.0.1:{RSPAMD_CONTROLLER_PORT}";
    .include "$CONFDIR/worker-controller.inc"
    count = 1;
}}
worker "rspamd_proxy" {{
    bind_socket = "127.0.0.1:{RSPAMD_MILTER_PORT}";
    .include "$CONFDIR/worker-proxy.inc"
    count = 1;
    upstream "local" {{
        default = yes;
        self_scan = yes;
    }}
}}
"""
        )
        local_d = local / "local.d"
        (local_d / "options.inc").write_text(
            'dns { nameserver = ["127.0.0.1:53"]; timeout = 0.5s; retransmits = 1; }\n'
        )
        (local_d / "redis.conf").write_text(f'servers = "127.0.0.1:{RSPAMD_REDIS_PORT}";\ndb = "11";\n')
        for module in ("fuzzy_check", "rbl", "asn", "neural", "replies", "url_reputation", "hfilter"):
            (local_d / f"{module}.conf").write_text("enabled = false;\n")
        # The snippet the console's Mail servers page (and the README) gives the administrator.
        exporter = snippets.rspamd(self.console_url, "default", EXPORTER_SECRET)
        (local_d / "metadata_exporter.conf").write_text(exporter)
        (local / "rspamd.local.lua").write_text(
            """rspamd_config.SOC_TEST_SPAM = {
  callback = function(task)
    local value = task:get_header('X-Test-Spam')
    return value ~= nil and value:lower() == 'reject'
  end,
  score = 20.0,
  description = 'Test rule: X-Test-Spam: reject',
  group = 'soc_test',
}
"""
        )

    def _write_postfix(self) -> None:
        t = self.root
        policy = (
            f"check_policy_service {{ inet:127.0.0.1:{self.policy_port}, timeout=2s, default_action=DUNNO }}"
        )
        main = {
            "compatibility_level": "3.6",
            "queue_directory": f"{t}/run/postfix/queue",
            "data_directory": f"{t}/run/postfix/data",
            "myhostname": f"mail.{DOMAIN}",
            "syslog_name": "postfix-soc-test",
            "maillog_file": f"{t}/run/postfix.log",
            "maillog_file_prefixes": f"/var, {t.parent}",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "mydestination": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "relay_domains": "",
            "virtual_mailbox_domains": DOMAIN,
            "virtual_transport": f"lmtp:inet:127.0.0.1:{LMTP_PORT}",
            "default_transport": f"smtp:[127.0.0.1]:{SINK_PORT}",
            "relay_transport": f"smtp:[127.0.0.1]:{SINK_PORT}",
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": f"{t}/run/dovecot-auth-postfix",
            "smtpd_sasl_auth_enable": "no",
            "smtpd_milters": f"inet:127.0.0.1:{RSPAMD_MILTER_PORT}",
            "non_smtpd_milters": f"inet:127.0.0.1:{RSPAMD_MILTER_PORT}",
            "milter_default_action": "accept",
            "milter_protocol": "6",
            "enable_long_queue_ids": "yes",
            "smtputf8_enable": "no",
            "smtpd_recipient_restrictions": f"{policy}, permit_mynetworks, permit_sasl_authenticated, "
            "reject_unauth_destination",
            "smtpd_end_of_data_restrictions": policy,
        }
        (self.postfix_conf / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        services = [
            f"127.0.0.1:{SMTP_PORT} inet n - n - - smtpd",
            f"127.0.0.1:{SUBMISSION_PORT} inet n - n - - smtpd -o smtpd_sasl_auth_enable=yes "
            "-o smtpd_tls_security_level=none -o smtpd_client_restrictions=permit_sasl_authenticated,reject "
            "-o smtpd_relay_restrictions=permit_sasl_authenticated,reject",
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "proxywrite unix - - n - 1 proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "lmtp unix - - n - - lmtp",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        (self.postfix_conf / "master.cf").write_text("\n".join(services) + "\n")
        (self.run / "postfix" / "queue").mkdir(parents=True, exist_ok=True)
        data = self.run / "postfix" / "data"
        data.mkdir(parents=True, exist_ok=True)
        shutil.chown(data, "postfix")

    # -- start / stop

    def start(self) -> None:
        missing = [b for b in BINARIES if not os.access(b, os.X_OK)]
        if missing:
            raise RuntimeError(f"missing {', '.join(missing)}: install them (see .ci/run)")
        self.write_config()
        self._timed("sink", self._start_sink)
        self._timed("dovecot", self._start_dovecot)
        self._timed("redis", self._start_redis)
        self._timed("rspamd", self._start_rspamd)
        self._timed("postfix", self._start_postfix)

    def _timed(self, name: str, start) -> None:
        began = time.monotonic()
        start()
        self.timings[name] = time.monotonic() - began

    def _start_sink(self) -> None:
        from aiosmtpd.controller import Controller

        class Sink:
            def __init__(self) -> None:
                self.messages: list[tuple[str, list[str], bytes]] = []

            async def handle_DATA(self, server, session, envelope):
                self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
                return "250 OK"

        self.sink = Sink()
        self._sink_controller = Controller(self.sink, hostname="127.0.0.1", port=SINK_PORT)
        self._sink_controller.start()

    def _start_dovecot(self) -> None:
        self._check(["/usr/sbin/dovecot", "-c", str(self.dovecot_conf)])
        for port in (IMAP_PORT, LMTP_PORT, DOVEADM_PORT, MANAGESIEVE_PORT):
            wait_port(port)

    def _start_redis(self) -> None:
        self.processes["redis"] = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
            [
                "/usr/bin/redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(RSPAMD_REDIS_PORT),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.run),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(RSPAMD_REDIS_PORT)

    def _start_rspamd(self) -> None:
        db, run, log = (self.rspamd_dir / name for name in ("db", "run", "log"))
        for path in (db, run, log):
            path.mkdir(parents=True, exist_ok=True)
        for cached in glob.glob(str(self.hs_cache / "*.hs*")):
            shutil.copy2(cached, db)
        subprocess.run(["chown", "-R", "_rspamd:_rspamd", str(self.rspamd_dir)], check=True)  # noqa: S603, S607
        self.processes["rspamd"] = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
            [
                "/usr/bin/rspamd",
                "-f",
                "-u",
                "_rspamd",
                "-g",
                "_rspamd",
                "-c",
                str(self.conf / "rspamd" / "rspamd.conf"),
                f"--var=LOCAL_CONFDIR={self.conf / 'rspamd'}",
                f"--var=DBDIR={db}",
                f"--var=RUNDIR={run}",
                f"--var=LOGDIR={log}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_http(f"http://127.0.0.1:{RSPAMD_CONTROLLER_PORT}/ping")
        wait_http(f"http://127.0.0.1:{RSPAMD_NORMAL_PORT}/ping")
        wait_port(RSPAMD_MILTER_PORT)

    def _start_postfix(self) -> None:
        self._check(["/usr/sbin/postfix", "-c", str(self.postfix_conf), "set-permissions"])
        self._check(["/usr/sbin/postfix", "-c", str(self.postfix_conf), "start"])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                with smtplib.SMTP("127.0.0.1", SUBMISSION_PORT, timeout=5) as smtp:
                    smtp.noop()
                return
            time.sleep(0.1)
        raise RuntimeError(f"postfix did not start:\n{self.log('postfix')}")

    def _check(self, command: list[str]) -> None:
        """Run a command that daemonizes: its output goes to a file (a pipe would stay open in the daemon)."""
        with tempfile.TemporaryFile() as output:
            done = subprocess.run(  # noqa: S603 - fixed binaries
                command, stdout=output, stderr=output, stdin=subprocess.DEVNULL, timeout=60, check=False
            )
            if done.returncode != 0:
                output.seek(0)
                raise RuntimeError(f"{' '.join(command)} failed: {output.read().decode(errors='replace')}")

    def stop(self) -> None:
        for command in (
            ["/usr/sbin/postfix", "-c", str(self.postfix_conf), "stop"],
            ["/usr/bin/doveadm", "-c", str(self.dovecot_conf), "stop"],
        ):
            subprocess.run(  # noqa: S603 - fixed binaries
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=False
            )
        rspamd = self.processes.pop("rspamd", None)
        if rspamd is not None:
            self._keep_hs_cache()
            os.killpg(rspamd.pid, signal.SIGTERM)
            try:
                rspamd.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(rspamd.pid, signal.SIGKILL)
        for process in self.processes.values():
            process.terminate()
            process.wait(10)
        if self.sink is not None:
            self._sink_controller.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _keep_hs_cache(self) -> None:
        self.hs_cache.mkdir(parents=True, exist_ok=True)
        for compiled in glob.glob(str(self.rspamd_dir / "db" / "*.hs*")):
            target = self.hs_cache / Path(compiled).name
            if not target.exists():
                shutil.copy2(compiled, target)

    def log(self, name: str) -> str:
        path = {
            "dovecot": self.run / "dovecot.log",
            "postfix": self.run / "postfix.log",
            "rspamd": self.rspamd_dir / "log" / "rspamd.log",
        }[name]
        return path.read_text(errors="replace") if path.exists() else f"(no {name} log)"

    # -- helpers for the tests

    def doveadm(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(  # noqa: S603 - fixed binary and arguments
            ["/usr/bin/doveadm", "-c", str(self.dovecot_conf), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def reset(self) -> None:
        """Every mailbox empty and without a Sieve script; no session open."""
        with contextlib.suppress(subprocess.TimeoutExpired):  # nothing to kick can be slow on a busy host
            self.doveadm("kick", "*")
        for home in (self.run / "mail" / DOMAIN).glob("*"):
            shutil.rmtree(home, ignore_errors=True)
        if self.sink is not None:
            self.sink.messages.clear()

    def imap_login(self, user: str, password: str, *, originating_ip: str | None = None) -> imaplib.IMAP4:
        """Log in over IMAP; with ``originating_ip`` the client first says where it is (IMAP ID
        ``x-originating-ip``, honoured because 127.0.0.1 is in ``login_trusted_networks``)."""
        client = imaplib.IMAP4("127.0.0.1", IMAP_PORT, timeout=30)
        if originating_ip:
            imaplib.Commands["ID"] = ("NONAUTH", "AUTH", "SELECTED")
            client._simple_command("ID", f'("x-originating-ip" "{originating_ip}")')
        client.login(user, password)
        return client

    def submit(
        self,
        user: str,
        password: str,
        recipients: list[str],
        *,
        subject: str = "Hello",
        message_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> str:
        """Submit a message with SMTP AUTH on the submission port; returns its Message-ID."""
        message = EmailMessage()
        message["From"] = user
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message["Message-ID"] = message_id or f"<{time.time_ns()}@{DOMAIN}>"
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content("Please find the report attached.\n")
        with smtplib.SMTP("127.0.0.1", SUBMISSION_PORT, timeout=30) as smtp:
            smtp.login(user, password)
            smtp.send_message(message, from_addr=user, to_addrs=recipients)
        return message["Message-ID"]

    def deliver(
        self, sender: str, recipients: list[str], *, message_id: str, subject: str = "Invoice"
    ) -> None:
        """Deliver a message straight to Dovecot over LMTP (Sieve runs)."""
        message = EmailMessage()
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message["Message-ID"] = message_id
        message.set_content("Pay the invoice today.\n")
        with smtplib.LMTP("127.0.0.1", LMTP_PORT) as lmtp:
            lmtp.send_message(message, from_addr=sender, to_addrs=recipients)

    def message_ids(self, user: str) -> list[tuple[str, str]]:
        """(mailbox, Message-ID) of every message of ``user``."""
        done = self.doveadm("-f", "tab", "fetch", "-u", user, "mailbox hdr.message-id", "ALL")
        rows = [line.split("\t") for line in done.stdout.splitlines()[1:] if line.strip()]
        return [(row[0], row[1].strip()) for row in rows if len(row) >= 2]
