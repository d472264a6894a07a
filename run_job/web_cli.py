"""``process-control-web``: the status page with an embedded server (SPEC §12).

``process-control-web [--config PATH] [--listen HOST:PORT]`` serves
``run_job.web.app`` on ``web.listen`` (default ``127.0.0.1:8950``) with the
standard library's WSGI server, one thread per connection (so a slow client
holds one thread, not the server; a connection silent for 30 s is dropped;
at most 64 at a time, the others wait in the listen queue).

An address that is not loopback is refused unless ``web.allow_remote:
true``. It authenticates nobody, so its pages are read-only: operators act
through a WSGI server behind a front server that sets ``REMOTE_USER``. Started as root, it binds the address and then switches to
the service user (config key ``user``) before it reads any state, as run-job
does; started as anyone else, it must be that user.

Exit status: 0 when stopped by SIGTERM or SIGINT, 2 for a bad command line
or config, 1 when it cannot serve (address in use, refused address, wrong
user, unusable secret).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from run_job import console
from run_job.errors import (EXIT_USAGE, EXIT_WEB_FAILED, ConfigError, ProcessControlError,
                             UsageError)

PROG = "process-control-web"
MAX_CONNECTIONS = 64
CLIENT_TIMEOUT = 30.0  # seconds a connection may stay silent


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port) (pure); UsageError otherwise."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or ":" in host and \
            not text.startswith("["):
        raise UsageError(f"--listen {text!r}: write HOST:PORT, such as 127.0.0.1:8950 or [::1]:8950")
    return host, int(port)


def is_loopback(address: str) -> bool:
    """Is an IP address a loopback one (pure)?"""
    import ipaddress

    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def resolve(host: str, port: int) -> list[tuple[Any, str]]:
    """(family, address) of every address ``host`` stands for."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise UsageError(f"--listen: cannot resolve {host!r}: {err.strerror}") from None
    return [(family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos]


def check_address(host: str, addresses: list[str], allow_remote: bool) -> None:
    """Refuse a non-loopback address unless the config allows it (pure)."""
    outside = [a for a in addresses if not is_loopback(a)]
    if outside and not allow_remote:
        raise ProcessControlError(
            f"refusing to listen on {host} ({', '.join(sorted(set(outside)))}): not a loopback "
            "address; put the page behind a front web server that authenticates users, or set "
            "web.allow_remote: true in the config")


def make_server(host: str, port: int, family: Any, app: Any = None) -> Any:
    """The threaded stdlib WSGI server, bound (not serving yet)."""
    import socket
    import threading
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    class Handler(WSGIRequestHandler):
        timeout = CLIENT_TIMEOUT  # a silent client loses its connection, not a thread forever

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

        def handle(self) -> None:
            try:
                super().handle()
            except (ConnectionError, TimeoutError, socket.timeout):
                pass  # the client went away or stalled: nothing to answer

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128
        address_family = family

        def process_request(self, request: Any, client_address: Any) -> None:
            slots.acquire()  # at most MAX_CONNECTIONS threads; the rest wait in the backlog
            try:
                super().process_request(request, client_address)
            except BaseException:
                slots.release()
                raise

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                slots.release()

        def handle_error(self, request: Any, client_address: Any) -> None:
            sys.stderr.write(f"{PROG}: error serving {client_address}: {sys.exc_info()[1]}\n")

    try:
        server = Server((host, port), Handler, bind_and_activate=True)
    except OSError as err:
        raise ProcessControlError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    if app is not None:
        server.set_app(app)
    return server


def unauthenticated(app: Any) -> Any:
    """``app`` without ``REMOTE_USER`` and ``AUTH_TYPE`` in any request: the
    embedded server authenticates nobody, and the standard library's server
    copies its own process environment into every request's environ (a
    ``REMOTE_USER`` exported where it was started would make every visitor
    that user)."""

    def application(environ: dict, start_response: Any) -> Any:
        environ.pop("REMOTE_USER", None)
        environ.pop("AUTH_TYPE", None)
        return app(environ, start_response)

    return application


def build_parser() -> Any:
    from run_job import __version__

    parser = console.argument_parser_class()(
        prog=PROG, description="Serve the process-control status page and HTTP API (SPEC §12).")
    parser.add_argument("--config", metavar="PATH", help="global config file")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="address to serve on (default: web.listen, 127.0.0.1:8950)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def serve(opts: Any) -> int:
    import signal

    from run_job.config.cache import cached_config

    config = cached_config(opts.config)
    host, port = parse_listen(opts.listen or config.web.listen)
    found = resolve(host, port)
    check_address(host, [address for _, address in found], config.web.allow_remote)
    server = make_server(host, port, found[0][0])
    try:
        if os.geteuid() == 0 and config.user != "root":
            from run_job.privileges import become

            become(config.user, PROG, "the web page")
        from run_job.web.app import make_app

        app = make_app(opts.config)
        server.set_app(unauthenticated(app))
        mode = "read-only" + (" (web.operators act through a WSGI server behind an authenticating "
                              "front server: this one authenticates nobody)" if app.operators else "")
        shown = f"[{host}]" if ":" in host else host
        console.say_error(PROG, [f"serving http://{shown}:{server.server_address[1]}/ for the jobs in "
                                 f"{config.job_directory}; {mode}"])
        if os.geteuid() == 0:
            console.say_error(PROG, ["warning: serving as root (config key user is root)"])

        def stop(signum: int, frame: Any) -> None:
            import threading

            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    return 0


def _status(err: BaseException) -> int:
    return EXIT_USAGE if isinstance(err, (UsageError, ConfigError)) else EXIT_WEB_FAILED


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return console.run_main(PROG, lambda: serve(build_parser().parse_args(args)),
                            debug="--debug" in args, status_of=_status, internal=EXIT_WEB_FAILED)


if __name__ == "__main__":
    sys.exit(main())
