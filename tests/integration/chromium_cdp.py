"""Headless Chromium (Debian's) driven over the DevTools protocol, for the web page's tests.

A small client: start the browser on a fresh profile with the flags this
machine's closed network needs, attach to its page over a WebSocket
(``websocket-client``, PyPI, or Debian's ``python3-websocket``), navigate,
evaluate JavaScript, take screenshots, and collect every console message,
uncaught exception and browser log entry (failed loads, CSP violations) so
that a test can assert there were no errors.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         "--remote-allow-origins=*", "--window-size=1400,1000"]


def skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not shutil.which(CHROMIUM):
        return f"no {CHROMIUM} (apt-get install chromium chromium-driver)"
    try:
        import websocket  # noqa: F401
    except ImportError:
        return "no WebSocket client (pip install websocket-client, or apt-get install python3-websocket)"
    return None


class Chromium:
    def __init__(self, profile: Path, port: int) -> None:
        import websocket

        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
                                      f"--remote-debugging-port={port}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.events: list[dict[str, Any]] = []
        self._id = 0
        page = self._page_target(port)
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30,
                                              suppress_origin=True)
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def _page_target(self, port: int) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
                if pages:
                    return pages[0]
            except OSError as err:
                last = err
            time.sleep(0.1)
        raise RuntimeError(f"chromium's DevTools did not answer on port {port}: {last}")

    # ------------------------------------------------------------ protocol

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        mine = self._id
        self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == mine:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_event(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        """The next event ``name`` (events already seen are not waited for again)."""
        import websocket

        seen = len(self.events)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events[seen:]:
                if event["method"] == name:
                    return event
            seen = len(self.events)
            self.ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                message = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                break
            finally:
                self.ws.settimeout(30)
            if "method" in message:
                self.events.append(message)
                if message["method"] == name:
                    return message
        raise TimeoutError(f"no {name} within {timeout}s")

    # ------------------------------------------------------------ actions

    def navigate(self, url: str) -> None:
        mark = len(self.events)
        self.send("Page.navigate", url=url)
        self._wait_load(mark)

    def _wait_load(self, mark: int, timeout: float = 30.0) -> None:
        if any(e["method"] == "Page.loadEventFired" for e in self.events[mark:]):
            return
        self.wait_event("Page.loadEventFired", timeout)

    def click_and_wait(self, selector: str) -> None:
        """Click ``selector`` (a form button) and wait for the page it leads to."""
        mark = len(self.events)
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        self._wait_load(mark)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def pump(self, seconds: float) -> None:
        """Let the page run for ``seconds`` while events are collected."""
        import websocket

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                message = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            finally:
                self.ws.settimeout(30)
            if "method" in message:
                self.events.append(message)

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def errors(self) -> list[str]:
        """Every error the page reported: uncaught exceptions, console errors,
        browser log errors (a failed load, a CSP violation)."""
        found = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
                entry = params["entry"]
                found.append(f"log {entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")
        return found

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
