#!/usr/bin/env python3
"""A small HTTP server to run as a process-control service (see http-server.yaml).

Serves a folder on 127.0.0.1:$HTTP_PORT. It is the service's main process
(sbatch-service exec's it), so it gets the stop and reload signals itself:
SIGTERM/SIGINT stop it cleanly, SIGHUP re-reads $HTTP_GREETING_FILE (a reload
without dropping connections). Logs go to stdout/stderr, which sbatch-service
appends to <output_directory>/<service>/service.log.
"""

import functools
import http.server
import os
import signal
import sys
import threading


def main() -> int:
    port = int(os.environ.get("HTTP_PORT", "8080"))
    folder = os.environ.get("HTTP_DIRECTORY", os.getcwd())
    greeting_file = os.environ.get("HTTP_GREETING_FILE")
    state = {"greeting": ""}

    def load_greeting() -> None:
        if greeting_file and os.path.exists(greeting_file):
            with open(greeting_file) as handle:
                state["greeting"] = handle.read().strip()
        print(f"greeting: {state['greeting']!r}", flush=True)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/greeting":
                body = (state["greeting"] + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(Handler, directory=folder))

    def stop(signum, _frame):
        print(f"signal {signum}: stopping", flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    def reload(signum, _frame):
        print(f"signal {signum}: reloading", flush=True)
        load_greeting()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    load_greeting()
    print(f"serving {folder} on 127.0.0.1:{port}", flush=True)
    server.serve_forever()
    server.server_close()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
