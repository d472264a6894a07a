"""The web page's defences (SPEC §12): Host allow list, CSRF tokens, headers, the secret.

Pure but for ``load_secret``:

* ``host_allowed``: the ``Host`` header must name this server (loopback
  names, plus ``web.hosts``; the port is ignored), so that a DNS name
  rebound to 127.0.0.1 cannot make a browser read the page or post to it.
* ``csrf_token``/``csrf_ok``: an operator's form carries HMAC-SHA256(secret,
  REMOTE_USER); a page of another site cannot know it. ``cross_site`` adds
  the browser's own word (``Origin``, ``Sec-Fetch-Site``) on top.
* ``HEADERS``: sent with every response: a Content-Security-Policy that
  allows nothing but this server's own files (no inline script or style),
  ``nosniff``, no framing, no referrer, no caching.
* ``load_secret``: the per-site secret, ``<state_directory>/web.secret``
  (32 random bytes, mode 0600, the service user's), made on first use.
"""

from __future__ import annotations

import hmac
import os
import stat

from run_job.errors import SecurityError

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
SECRET_FILE = "web.secret"
SECRET_BYTES = 32

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)


def host_name(header: str | None) -> str | None:
    """The host of a ``Host`` header, lower case, without port and final dot
    (``[::1]`` keeps its brackets); None when it is missing or malformed (pure)."""
    if not header or len(header) > 255 or not header.isascii():
        return None
    text = header.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[: end + 1], text[end + 1:]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return host
    host, _, port = text.partition(":")
    if port and not port.isdigit():
        return None
    host = host[:-1] if host.endswith(".") else host
    if not host or any(not (c.isalnum() or c in "-._") for c in host):
        return None
    return host


def allowed_hosts(extra: tuple[str, ...] | list[str]) -> frozenset[str]:
    """The loopback names plus ``web.hosts`` as ``host_name`` writes them (pure)."""
    names = set(LOOPBACK_NAMES)
    for entry in extra:
        name = host_name(entry)
        if name is not None:
            names.add(name)
    return frozenset(names)


def host_allowed(header: str | None, allowed: frozenset[str]) -> bool:
    """Does the ``Host`` header name this server (pure)?"""
    name = host_name(header)
    return name is not None and name in allowed


def csrf_token(secret: bytes, user: str) -> str:
    """The token of ``user``'s forms (pure): the same for every form of that
    user until the secret changes; worthless for anyone else."""
    return hmac.new(secret, b"process-control-web csrf\0" + user.encode("utf-8", "surrogateescape"),
                    "sha256").hexdigest()


def csrf_ok(secret: bytes, user: str, token: object) -> bool:
    """Is ``token`` the token of ``user`` (pure, constant time)?"""
    return isinstance(token, str) and hmac.compare_digest(csrf_token(secret, user), token)


def cross_site(environ: dict) -> bool:
    """Does the browser say the request comes from another site (pure)? A
    request without ``Origin`` and ``Sec-Fetch-Site`` (curl) is judged by
    its token alone."""
    fetch_site = environ.get("HTTP_SEC_FETCH_SITE")
    if fetch_site and fetch_site not in ("same-origin", "none"):
        return True
    origin = environ.get("HTTP_ORIGIN")
    # "null": what browsers send for a form of a page with Referrer-Policy:
    # no-referrer (ours), so it says nothing either way
    if origin and origin != "null":
        _, _, rest = origin.partition("://")
        if not rest or _plain(rest) != _plain(environ.get("HTTP_HOST") or ""):
            return True
    return False


def _plain(text: str) -> str:
    return text.strip().lower().rstrip("/")


def load_secret(state_directory: str | os.PathLike) -> bytes:
    """The site's secret, made on first use (as the user the page runs as).

    Raises SecurityError when the file is not a regular file of ours that
    nobody else can read or write, or is too short: a secret others can
    read protects nothing.
    """
    path = os.path.join(os.fspath(state_directory), SECRET_FILE)
    if not os.path.lexists(path):
        _make_secret(os.fspath(state_directory), path)
    return _read_secret(path)


def _make_secret(folder: str, path: str) -> None:
    """Write a new secret beside ``path`` and link it into place: never
    replaces one, and a reader (another worker of the WSGI server starting
    at the same time) sees the whole file or none."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(folder, mode=0o750, exist_ok=True)  # as pauses and runs do
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, os.urandom(SECRET_BYTES).hex().encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: theirs counts
    except OSError as err:
        raise SecurityError(f"cannot create the web page's secret {path}: {err.strerror}; "
                            "state_directory must be writable by the service user") from err
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _read_secret(path: str) -> bytes:
    from run_job.security import open_regular, read_fd, reason

    try:
        fd, st = open_regular(path, nofollow=True, limit=4096)
    except OSError as err:
        raise SecurityError(f"the web page's secret {path} cannot be used: {reason(err)}; "
                            "remove it (a new one is made)") from err
    try:
        if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077:
            raise SecurityError(
                f"the web page's secret {path} is owned by uid {st.st_uid} with mode "
                f"{stat.S_IMODE(st.st_mode):04o}; it must be the service user's, mode 0600: "
                "remove it (a new one is made)")
        data = read_fd(fd, st, 4096, path).strip()
    finally:
        os.close(fd)
    if len(data) < SECRET_BYTES:
        raise SecurityError(f"the web page's secret {path} is too short; remove it (a new one is made)")
    return data
