"""Open a local HTML file in headless Chromium and record what the page did.

Speaks the Chrome DevTools Protocol over ``--remote-debugging-pipe`` (JSON messages ending in
NUL on file descriptors 3 and 4), so it needs nothing beyond the standard library and the
``chromium`` binary: no WebSocket client, no Playwright. Used by tests/test_report_browser.py
and to take the screenshot in docs/ (``python tests/_chromium.py PAGE.html OUT.png``).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Headless, and nothing that talks to the network on its own (updates, sync, QUIC probes).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)

# Resolves once every <img> has decoded (or failed to): [naturalWidth, naturalHeight, error].
_DECODE_IMAGES = """
Promise.all(Array.from(document.images, image => image.decode().then(
    () => [image.naturalWidth, image.naturalHeight, null],
    error => [image.naturalWidth, image.naturalHeight, String(error)])))
"""


def find_chromium():
    """The Chromium binary: ``$CHROMIUM`` if set, else ``chromium`` on PATH, else None."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium")


@dataclass
class PageVisit:
    """What a page did while it loaded in the browser."""

    images: list  # [naturalWidth, naturalHeight, decode error or None] per <img>
    requests: list = field(default_factory=list)  # every URL the page requested
    console_errors: list = field(default_factory=list)  # console.error, exceptions, log errors
    screenshot: bytes = b""  # PNG of the whole page


class _Pipe:
    """A DevTools session over the two pipes; ``call`` sends a command and waits for its reply,
    keeping the events that arrive meanwhile."""

    def __init__(self, to_browser, from_browser, timeout):
        self.to_browser, self.from_browser = to_browser, from_browser
        self.deadline = time.monotonic() + timeout
        self.buffer = b""
        self.events = []
        self.next_id = 0

    def _message(self):
        while b"\0" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise ConnectionError("Chromium closed the DevTools pipe")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method, session=None, **params):
        self.next_id += 1
        command = {"id": self.next_id, "method": method, "params": params}
        if session is not None:
            command["sessionId"] = session
        os.write(self.to_browser, json.dumps(command).encode() + b"\0")
        while True:
            message = self._message()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, method):
        while not any(event.get("method") == method for event in self.events):
            self.events.append(self._message())


def _high_fd(fd):
    """A close-on-exec copy of ``fd`` numbered 10 or above (moving it to 3 or 4 clobbers
    nothing)."""
    copy = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return copy


def visit(path, chromium, *, width=1100, height=800, timeout=60.0):
    """Load ``path`` in headless ``chromium`` and return a :class:`PageVisit`."""
    url = Path(path).resolve().as_uri()
    command_read, command_write = map(_high_fd, os.pipe())
    reply_read, reply_write = map(_high_fd, os.pipe())

    def pipes_on_3_and_4():  # in the child: where --remote-debugging-pipe expects them
        os.dup2(command_read, 3)  # dup2's copies are inheritable; the originals close on exec
        os.dup2(reply_write, 4)

    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen(
            [
                chromium,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            close_fds=False,  # keeps 3 and 4; everything Python opened is close-on-exec
            preexec_fn=pipes_on_3_and_4,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(command_read)
        os.close(reply_write)
        pipe = _Pipe(command_write, reply_read, timeout)
        try:
            targets = pipe.call("Target.getTargets")["targetInfos"]
            page = next(t["targetId"] for t in targets if t["type"] == "page")
            session = pipe.call("Target.attachToTarget", targetId=page, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                pipe.call(f"{domain}.enable", session)
            pipe.call("Page.navigate", session, url=url)
            pipe.wait_for("Page.loadEventFired")
            images = pipe.call(
                "Runtime.evaluate",
                session,
                expression=_DECODE_IMAGES,
                awaitPromise=True,
                returnByValue=True,
            )["result"]["value"]
            shot = pipe.call("Page.captureScreenshot", session, format="png")
            result = PageVisit(images=images, screenshot=base64.b64decode(shot["data"]))
            for event in pipe.events:
                params = event.get("params", {})
                method = event.get("method")
                if method == "Network.requestWillBeSent":
                    result.requests.append(params["request"]["url"])
                elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                    result.console_errors.append(json.dumps(params["args"]))
                elif method == "Runtime.exceptionThrown":
                    result.console_errors.append(json.dumps(params["exceptionDetails"]))
                elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                    result.console_errors.append(params["entry"]["text"])
            pipe.call("Browser.close")
            return result
        finally:
            os.close(command_write)
            os.close(reply_read)
            try:
                browser.wait(timeout=10)
            except subprocess.TimeoutExpired:
                browser.kill()
                browser.wait()


if __name__ == "__main__":
    page, out = sys.argv[1:3]
    shot = visit(page, find_chromium() or "chromium", width=1000, height=1250).screenshot
    Path(out).write_bytes(shot)
