"""Failure and recovery mail: pure composition, and one bounded SMTP send.

Composition (``subject``, ``compose``, ``tail_text``) turns a run record into
an ``EmailMessage`` and never touches the network. ``read_tail`` reads the
end of ``output.log`` (at most ``TAIL_BYTES``, decoded with replacement).
``password_file_problem`` checks ``password_file`` without sending anything
(for ``--validate`` and the start of a run). ``send`` speaks SMTP with
``smtplib`` (plain, STARTTLS or implicit TLS, login with a password read from
``password_file``) and is bounded in time as a whole: a server that accepts the connection and never answers costs at most
``MailConfig.timeout`` seconds (plus a moment to tear the socket down).
Every failure is raised as ``MailError``; callers record it and go on.
"""

from __future__ import annotations

import errno
import os
import re
import signal as signal_module
import smtplib
import socket
import ssl
import stat
import threading
import time
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Mapping, Sequence

from run_job.errors import ProcessControlError
from run_job.model import FailMail, Job, MailConfig

SUBJECT_PREFIX = "[process-control]"
TAIL_LINES = 50
TAIL_BYTES = 64 * 1024
# Time to let a worker notice its socket was shut down, after the deadline.
TEARDOWN_GRACE = 2.0


class MailError(ProcessControlError):
    """A mail could not be composed or sent (the message says why)."""


# --------------------------------------------------------------------------
# Pure composition
# --------------------------------------------------------------------------

def subject(host: str, slug: str, outcome: str, *, recovered: bool = False) -> str:
    """``[process-control] <host> <slug>: <outcome>`` (``success (recovered)``)."""
    text = f"{SUBJECT_PREFIX} {host} {slug}: {outcome}"
    if recovered:
        text += " (recovered)"
    return _one_line(text)


def tail_text(data: bytes, *, truncated_head: bool,
              max_lines: int = TAIL_LINES) -> tuple[str, bool]:
    """The last ``max_lines`` lines of ``data``, decoded with replacement.

    ``truncated_head`` says ``data`` does not start at the file's beginning,
    so its first (partial) line is dropped when other lines follow. Returns
    the text and whether anything before it was left out.
    """
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the file's final newline ends a line, it does not start one
    cut = truncated_head
    if truncated_head and len(lines) > 1:
        lines = lines[1:]
    if len(lines) > max_lines:
        lines = lines[-max_lines:]
        cut = True
    return "\n".join(_as_terminal_shows(line) for line in lines), cut


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def _as_terminal_shows(line: bytes) -> str:
    """One line as a terminal would leave it, safe for a mail body.

    Colour and cursor escapes go; a carriage return (progress bars) keeps
    what was written after the last one; NUL and other C0 controls (but tab)
    become U+FFFD, as do bytes that are not UTF-8.
    """
    text = line.decode("utf-8", errors="replace")
    text = _ANSI.sub("", text).rstrip("\r")
    if "\r" in text:
        text = text.rsplit("\r", 1)[1]
    return "".join(ch if ch == "\t" or ch >= " " else "\ufffd" for ch in text)


def _signal_name(number: Any) -> str:
    try:
        return f"{number} ({signal_module.Signals(int(number)).name})"
    except (TypeError, ValueError):
        return str(number)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def body(job: Job, record: Mapping[str, Any], *, kind: str,
         tail: str | None, tail_cut: bool, consecutive_failures: int,
         output_path: str | None, paused: Mapping[str, Any] | None = None) -> str:
    """The plain-text body of a failure or recovery mail; ``paused``: the
    pause this run put on the job (``pause_after_failures``), said first."""
    def field(key: str) -> str:
        value = record.get(key)
        return "-" if value is None or value == "" else str(value)

    lines: list[str] = []
    if kind == "recovery":
        lines.append(f"Job {job.slug} succeeded again after failing.")
    else:
        lines.append(f"Job {job.slug} ended with outcome {field('outcome')}"
                     f" ({consecutive_failures} consecutive failure"
                     f"{'' if consecutive_failures == 1 else 's'}).")
    if paused is not None:
        lines.append("")
        lines.append(f"The job is now paused: {_one_line(paused.get('reason') or '')}.")
        lines.append("Its scheduled runs are skipped until an operator resumes it with:")
        lines.append(f"    run-job --resume {job.slug}")
    lines.append("")
    rows = [
        ("Host", field("host")),
        ("Job", job.slug),
        ("Name", job.display_name),
        ("Outcome", field("outcome")),
        ("Reason", field("reason")),
        ("Exit code", field("exit_code")),
        ("Signal", "-" if record.get("signal") is None else _signal_name(record["signal"])),
        ("Started", field("started_at")),
        ("Ended", field("ended_at")),
        ("Duration", "-" if record.get("duration_s") is None
         else f"{float(record['duration_s']):.3f} s"),
        ("Run ID", field("run_id")),
        ("Run folder", field("run_dir")),
    ]
    commands = list(record.get("command") or [])
    for number, command in enumerate(commands, 1):
        rows.append((f"Command {number}" if len(commands) > 1 else "Command", str(command)))
    rows.append(("Job file", str(job.path)))
    if kind == "failure":
        rows.append(("Consecutive failures", str(consecutive_failures)))
    if paused is not None:
        rows.append(("Paused", f"since {paused.get('since') or '-'} (until run-job --resume)"))
    width = max(len(label) for label, _ in rows) + 1
    for label, value in rows:
        # Values are single lines: a reason or name with newlines stays readable.
        lines.append(f"{label + ':':<{width}} {_one_line(value)}")
    lines.append("")
    if output_path is None:
        lines.append("No output (the run has no run folder).")
    elif tail is None:
        lines.append(f"Output: {output_path} could not be read.")
    else:
        lines.append(f"Last {TAIL_LINES} lines of {output_path}"
                     f"{' (earlier output left out)' if tail_cut else ''}:")
        lines.append("-" * 72)
        lines.append(tail if tail else "(empty)")
        lines.append("-" * 72)
    lines.append("")
    lines.append("-- ")
    lines.append("process-control run-job")
    return "\n".join(lines) + "\n"


def compose(failmail: FailMail, job: Job, record: Mapping[str, Any], *, kind: str,
            tail: str | None, tail_cut: bool = False, consecutive_failures: int = 0,
            output_path: str | None = None, date: float | None = None,
            paused: Mapping[str, Any] | None = None) -> EmailMessage:
    """The whole message; ``kind`` is ``failure`` or ``recovery``.

    Header values are built from validated data (slug, addresses) and the
    host name; anything multi-line is folded to one line first, so nothing a
    job prints or names can add a header.
    """
    if kind not in ("failure", "recovery"):
        raise MailError(f"unknown mail kind {kind!r}")
    host = str(record.get("host") or "-")
    outcome = "success" if kind == "recovery" else str(record.get("outcome") or "-")
    # 998 is RFC 5322's hard limit: a subject is never folded (some readers
    # then show it with a leading space).
    msg = EmailMessage(policy=SMTP_POLICY.clone(max_line_length=998))
    msg["Subject"] = subject(host, job.slug, outcome, recovered=kind == "recovery") + (
        " (now paused)" if paused is not None else "")
    msg["From"] = _one_line(failmail.from_address)
    msg["To"] = ", ".join(_one_line(a) for a in failmail.to_addresses)
    msg["Date"] = formatdate(date, localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=_one_line(host) or None)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Process-Control-Job"] = job.slug
    msg["X-Process-Control-Outcome"] = outcome
    msg.set_content(body(job, record, kind=kind, tail=tail, tail_cut=tail_cut,
                         consecutive_failures=consecutive_failures,
                         output_path=output_path, paused=paused), charset="utf-8")
    return msg


# --------------------------------------------------------------------------
# Reading output and the password
# --------------------------------------------------------------------------

def read_tail(path: Path, *, max_bytes: int = TAIL_BYTES,
              max_lines: int = TAIL_LINES) -> tuple[str, bool]:
    """The last lines of a (possibly huge, possibly binary) file; OSError passes.

    The job may have replaced ``output.log`` with a FIFO or a device: it is
    opened without blocking and refused unless it is a regular file.
    """
    from run_job.security import open_regular

    fd, st = open_regular(path)
    try:
        start = max(0, st.st_size - max_bytes)
        data = os.pread(fd, max_bytes, start)
    finally:
        os.close(fd)
    return tail_text(data, truncated_head=start > 0, max_lines=max_lines)


def _mode_problem(path: Path, mode: int) -> str | None:
    """The rule for ``password_file``: only its owner may read or change it."""
    if mode & 0o077:
        return (f"mail.password_file {path}: mode {stat.S_IMODE(mode):04o} lets others read or change"
                f" it; run: chmod 600 {path}")
    return None


def read_password(path: Path) -> str:
    """The first line of ``password_file``; refused if group/world-readable."""
    from run_job.security import NotRegularFile, open_regular, reason

    try:
        fd, st = open_regular(path, nofollow=True)
    except NotRegularFile as err:
        raise MailError(f"mail.password_file {path}: {reason(err)}") from err
    except OSError as err:
        raise MailError(f"mail.password_file {path}: cannot open: {reason(err)}") from err
    try:
        problem = _mode_problem(path, st.st_mode)
        if problem:
            raise MailError(problem)
        data = os.read(fd, 64 * 1024)
    finally:
        os.close(fd)
    text = data.decode("utf-8", errors="strict").splitlines()
    if not text or not text[0]:
        raise MailError(f"mail.password_file {path}: empty")
    return text[0]


def password_file_problem(mail: MailConfig, user: str | None = None) -> str | None:
    """What would keep a mail from logging in with ``mail.password_file``, or None.

    Checked without sending anything, so that ``--validate`` (and run-job when
    a run starts) can report it long before a failure mail is due: a
    ``username`` without a ``password_file``; a file that is missing, a
    symbolic link, not a regular file (a FIFO is never opened), readable or
    writable by group or others, unreadable, not valid UTF-8 or empty. ``user``:
    the user who will read it (the service user run-job sends mail as); when
    this process is root and that user is not, the file must belong to them
    (mode 0600 leaves it to its owner). Never raises.
    """
    path = mail.password_file
    if path is None:
        return "mail: username is set but password_file is not" if mail.username else None
    try:
        st = os.lstat(path)
    except OSError as err:
        return (f"mail.password_file {path} does not exist" if err.errno == errno.ENOENT
                else f"mail.password_file {path} cannot be examined: {err.strerror}")
    if stat.S_ISLNK(st.st_mode):
        return (f"mail.password_file {path} is a symbolic link, which is not followed: name the file "
                f"itself ({os.path.realpath(path)})")
    if not stat.S_ISREG(st.st_mode):
        from run_job.security import kind_of

        return f"mail.password_file {path}: not a regular file ({kind_of(st.st_mode)})"
    problem = _mode_problem(path, st.st_mode)
    if problem:
        return problem
    if user and os.geteuid() == 0 and user != "root":
        import pwd

        try:
            uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            uid = None
        if uid is not None and uid != 0 and st.st_uid != uid:
            return (f"mail.password_file {path} belongs to uid {st.st_uid}, but mail is sent as {user}, who"
                    f" cannot read it with mode {stat.S_IMODE(st.st_mode):04o}: chown {user} {path}")
    try:
        read_password(path)
    except MailError as err:
        return str(err)
    except UnicodeDecodeError:
        return f"mail.password_file {path}: not valid UTF-8 text"
    return None


# --------------------------------------------------------------------------
# Sending
# --------------------------------------------------------------------------

class _SMTP(smtplib.SMTP):
    """``connect`` remembers the host name, which STARTTLS checks the certificate against.

    (smtplib sets it only when the host is given to the constructor, which
    would connect before the caller can reach the socket to cut it.)
    """

    sock: socket.socket  # for the type checker: read only after connect

    def connect(self, host: str = "localhost", port: int = 0, source_address=None):
        self._host = host
        return super().connect(host, port, source_address)


class _SMTP_SSL(smtplib.SMTP_SSL):  # noqa: N801 - mirrors smtplib's name
    sock: socket.socket  # for the type checker: read only after connect

    def connect(self, host: str = "localhost", port: int = 0, source_address=None):
        self._host = host
        return super().connect(host, port, source_address)


class _Attempt:
    """What the worker thread shares with the caller."""

    def __init__(self) -> None:
        self.smtp: smtplib.SMTP | None = None
        self.error: BaseException | None = None
        self.refused: dict = {}
        self.lock = threading.Lock()
        self.abandoned = False


def _converse(mail: MailConfig, msg: EmailMessage, sender: str,
              recipients: Sequence[str], password: str | None,
              deadline: float, attempt: _Attempt) -> None:
    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        return left

    # Loading the CA store costs ~20 ms: only when TLS is asked for.
    context = ssl.create_default_context() if (mail.ssl or mail.starttls) else None
    if mail.ssl:
        smtp: _SMTP | _SMTP_SSL = _SMTP_SSL(timeout=remaining(), context=context)
    else:
        smtp = _SMTP(timeout=remaining())
    with attempt.lock:
        attempt.smtp = smtp
        if attempt.abandoned:
            return
    try:
        smtp.connect(mail.smtp_host, mail.smtp_port)
        # Every exchange gets the time left, not a fresh full timeout.
        smtp.sock.settimeout(remaining())
        smtp.ehlo_or_helo_if_needed()
        if mail.starttls and not mail.ssl:
            smtp.sock.settimeout(remaining())
            smtp.starttls(context=context)
            smtp.ehlo()
        if mail.username:
            smtp.sock.settimeout(remaining())
            smtp.login(mail.username, password or "")
        smtp.sock.settimeout(remaining())
        attempt.refused = smtp.send_message(msg, from_addr=sender, to_addrs=list(recipients))
        try:
            smtp.sock.settimeout(min(remaining(), 5.0))
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass  # the message was accepted; a rude goodbye does not matter
    finally:
        smtp.close()


def _describe(err: BaseException, mail: MailConfig) -> str:
    where = f"{mail.smtp_host}:{mail.smtp_port}"
    # smtplib turns a read timeout into SMTPServerDisconnected; look beneath.
    if isinstance(err, (socket.timeout, TimeoutError)) or isinstance(
            err.__context__ or err.__cause__, (socket.timeout, TimeoutError)):
        return f"SMTP server {where} did not answer within {mail.timeout:g} s"
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        refused = ", ".join(f"{rcpt}: {code} {_decode(text)}"
                            for rcpt, (code, text) in err.recipients.items())
        return f"SMTP server {where} refused every recipient ({refused})"
    if isinstance(err, smtplib.SMTPResponseException):
        return f"SMTP server {where} answered {err.smtp_code} {_decode(err.smtp_error)}"
    if isinstance(err, smtplib.SMTPServerDisconnected):
        return f"SMTP server {where} closed the connection ({err})"
    if isinstance(err, smtplib.SMTPException):
        return f"SMTP server {where}: {err}"
    if isinstance(err, ssl.SSLError):
        return f"TLS with SMTP server {where} failed: {err}"
    if isinstance(err, ConnectionRefusedError):
        return f"SMTP server {where} refused the connection (nothing listens there?)"
    if isinstance(err, OSError):
        return f"SMTP server {where} unreachable: {err.strerror or err}"
    return f"sending through {where} failed: {type(err).__name__}: {err}"


def _decode(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return _one_line(str(value))


def send(mail: MailConfig, msg: EmailMessage, sender: str,
         recipients: Sequence[str]) -> dict:
    """Send ``msg``; returns the recipients the server refused (usually {}).

    Raises ``MailError`` on any failure. The whole conversation, name lookup
    included, runs in a worker thread; at ``mail.timeout`` its socket is shut
    down, which ends any blocked read, and the caller goes on.
    """
    if mail.ssl and mail.starttls:
        raise MailError("mail: ssl and starttls exclude each other (ssl is TLS from"
                        " the first byte, usually port 465; starttls upgrades port 25/587)")
    if not recipients:
        raise MailError("failmail: no recipient")
    password = None
    if mail.username:
        if mail.password_file is None:
            raise MailError("mail: username is set but password_file is not")
        password = read_password(mail.password_file)
    deadline = time.monotonic() + mail.timeout
    attempt = _Attempt()

    def work() -> None:
        try:
            _converse(mail, msg, sender, recipients, password, deadline, attempt)
        except BaseException as err:  # noqa: BLE001 - reported to the caller
            attempt.error = err

    worker = threading.Thread(target=work, name="process-control-smtp", daemon=True)
    worker.start()
    worker.join(mail.timeout)
    if worker.is_alive():
        with attempt.lock:
            attempt.abandoned = True
            smtp = attempt.smtp
        sock = getattr(smtp, "sock", None) if smtp is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        worker.join(TEARDOWN_GRACE)
        # A thread stuck in name resolution cannot be interrupted; it is a
        # daemon and dies with run-job.
        raise MailError(f"SMTP server {mail.smtp_host}:{mail.smtp_port} did not"
                        f" answer within {mail.timeout:g} s")
    if attempt.error is not None:
        if isinstance(attempt.error, MailError):
            raise attempt.error
        raise MailError(_describe(attempt.error, mail)) from attempt.error
    return {rcpt: [code, _decode(text)] for rcpt, (code, text) in attempt.refused.items()}
