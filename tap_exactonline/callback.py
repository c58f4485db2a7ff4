"""Exact's redirect after the login: the code of a callback URL, and a listener for it on the
redirect URI's loopback addresses.

Anything on this machine can send a request to the listener (another local process, or a web
page that sends the browser to `localhost`), so only a request carrying the `state` of this
authorization is taken; any other is ignored and the wait goes on, until the real redirect or
the deadline. Nothing taken from a request reaches the terminal with its control characters.
"""

from __future__ import annotations

import errno
import secrets
import socket
import threading
import unicodedata
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tap_exactonline.tokens import TokenRefreshError

# "localhost" is resolved by the browser, to ::1 first on many systems: both are listened on.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
# A connection that sends no complete request within this is closed: it must not hold the
# listener (each connection has its own thread, so it cannot anyway; this ends the thread).
CONNECTION_SECONDS = 10.0
# Longest text of a request shown in a message.
SHOWN_CHARACTERS = 200


class AuthorizationFailed(Exception):
    """One line for the user; the command exits 1."""


def printable(text: str) -> str:
    """`text` without control or format characters: an escape sequence sent in a request
    (`\\x1b[2J`) would otherwise act on the user's terminal."""
    kept = "".join(char for char in text if unicodedata.category(char)[0] != "C")
    return kept[:SHOWN_CHARACTERS]


def code_of(query: dict[str, list[str]], missing: str) -> str:
    """The `code` of a callback's query, or Exact's refusal (`error`) as one line."""
    if "error" in query:
        error = printable(query["error"][0])
        description = printable(query.get("error_description", [""])[0])
        detail = f" ({description})" if description else ""
        raise AuthorizationFailed(f"Exact did not authorize the app: {error}{detail}.")
    codes = query.get("code")
    if not codes or not codes[0]:
        raise AuthorizationFailed(missing)
    return codes[0]


def state_of(query: dict[str, list[str]], state: str) -> str | None:
    """Why the query is not from this authorization (no `state`, another one), if it is not."""
    received = query.get("state")
    if not received:
        return "without a state"
    if len(received) != 1:
        return "with more than one state"
    if not secrets.compare_digest(received[0].encode(), state.encode()):
        return "with another state"
    return None


def code_from_callback(callback: str, state: str) -> str:
    """The `code` of a pasted callback URL, which must carry our `state` (Exact sends it back
    with every code: a URL without it was not made by this login), or of a bare code, which only
    the user's own copying gives."""
    callback = callback.strip()
    if not callback:
        raise AuthorizationFailed(
            "Nothing was pasted: paste the whole URL your browser was sent to."
        )
    if "?" not in callback and "=" not in callback:
        return callback
    query = parse_qs(urlsplit(callback).query or callback)
    why = state_of(query, state)
    if why and "error" not in query:  # Exact's refusal is shown as it is, whatever its state
        raise AuthorizationFailed(
            f"The callback is not from this authorization (a URL {why}): paste the whole URL "
            "your browser was sent to after logging in through the URL above."
        )
    return code_of(query, "The callback URL has no `code`; paste the whole URL.")


class Arrival:
    """The callback with our state, waiting for the outcome the browser is shown."""

    def __init__(self, query: dict[str, list[str]]) -> None:
        self.query = query
        self.page: tuple[int, str] | None = None
        self._answered = threading.Event()
        self._written = threading.Event()

    def code(self) -> str:
        return code_of(self.query, "Exact's redirect carried no `code`; run the command again.")

    def answer(self, status: int, page: str) -> None:
        if self.page is None:
            self.page = (status, page)
            self._answered.set()

    def wait_for_answer(self) -> tuple[int, str]:
        self._answered.wait()
        return self.page or (500, "No outcome.")

    def written(self) -> None:
        self._written.set()

    def wait_until_written(self, seconds: float) -> None:
        self._written.wait(seconds)


class _LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # closing does not wait for an idle connection's thread


class _LoopbackServer6(_LoopbackServer):
    address_family = socket.AF_INET6


def _shown(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class CallbackListener:
    """Serves the redirect URI on its loopback addresses until a callback with our state."""

    def __init__(self, redirect_uri: str, state: str, log: Callable[[str], None]) -> None:
        parts = urlsplit(redirect_uri)
        if parts.hostname not in LOOPBACK_HOSTS:
            raise AuthorizationFailed(
                f"--listen needs a redirect URI on localhost (got {parts.hostname}); use --paste."
            )
        self.host, self.port, self.path = parts.hostname, parts.port or 80, parts.path or "/"
        self.state = state
        self.log = log
        self._lock = threading.Lock()
        self._arrived = threading.Event()
        self._arrival: Arrival | None = None
        self._closed = False
        self._servers: list[_LoopbackServer] = []

    def __enter__(self) -> CallbackListener:
        # [::1] first: once 127.0.0.1 answers, both are taken (a test relies on it).
        addresses = ["::1", "127.0.0.1"] if self.host == "localhost" else [self.host]
        handler = self._handler()
        for address in addresses:
            server_class = _LoopbackServer6 if ":" in address else _LoopbackServer
            try:
                self._servers.append(server_class((address, self.port), handler))
            except OSError as exc:
                if address == "::1" and exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    continue  # no IPv6 loopback here, so nobody else can listen on it either
                for bound in self._servers:
                    bound.server_close()
                raise AuthorizationFailed(
                    f"Cannot listen on {_shown(address, self.port)} ({exc.strerror}); the "
                    "browser could be sent there, so the code would not be safe: free the "
                    "port, or use --paste."
                ) from None
        for server in self._servers:
            threading.Thread(target=server.serve_forever, args=(0.2,), daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._arrival is not None:
            # The browser waits for a page: never leave it without one.
            self._arrival.answer(500, "The authorization failed; see the command's output.")
            self._arrival.wait_until_written(CONNECTION_SECONDS)
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def next_callback(self, timeout: float) -> Arrival:
        """The callback with our state, once it comes within `timeout` seconds."""
        self._arrived.wait(timeout)
        with self._lock:
            if self._arrival is None:
                self._closed = True  # one arriving now is too late
                raise AuthorizationFailed(f"No callback within {timeout:.0f} s.")
            return self._arrival

    def _receive(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        if parts.path != self.path:
            _reply(request, 404, "Not found.")
            return
        query = parse_qs(parts.query)
        if mismatch := state_of(query, self.state):
            # Not Exact's answer to this login: a forged code must not be exchanged, and the
            # real redirect may still come. Nothing from the request is shown.
            self.log(f"ignored a request to {self.path} {mismatch} (not from this login).")
            _reply(request, 400, "Not from the authorization in progress: ignored.")
            return
        with self._lock:
            taken = self._closed or self._arrival is not None
            if not taken:
                arrival = self._arrival = Arrival(query)
                self._arrived.set()
        if taken:
            _reply(request, 409, "This authorization has already been answered.")
            return
        try:
            _reply(request, *arrival.wait_for_answer())
        finally:
            arrival.written()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        listener = self

        class Callback(BaseHTTPRequestHandler):
            timeout = CONNECTION_SECONDS

            def do_GET(self) -> None:
                listener._receive(self)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the request line carries the code

        return Callback


def _reply(request: BaseHTTPRequestHandler, status: int, page: str) -> None:
    body = page.encode()
    request.send_response(status)
    request.send_header("Content-Type", "text/plain; charset=utf-8")
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


def listen_for_callback(
    redirect_uri: str,
    state: str,
    timeout: float,
    finish: Callable[[str], str],
    log: Callable[[str], None],
    *,
    listening: Callable[[], None],
) -> str:
    """Wait on the redirect URI for Exact's redirect with our state; exchange its code with
    `finish` (in this, the main thread: its deadline needs it) while the browser waits, and
    show there what came of it. `listening` runs once the redirect URI answers: the login URL
    is shown only then, or a quick browser would find nobody there."""
    with CallbackListener(redirect_uri, state, log) as listener:
        listening()
        arrival = listener.next_callback(timeout)
        try:
            outcome = finish(arrival.code())
        except (AuthorizationFailed, TokenRefreshError) as failure:
            arrival.answer(400, f"Not authorized: {failure}\nRun the command again.")
            raise
        arrival.answer(200, "Exact Online is authorized. You can close this window.")
        return outcome
