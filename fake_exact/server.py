"""A fake Exact Online REST API on 127.0.0.1 (stdlib only), and `FakeExact` to drive it from tests.

Follows /work/shared/exact-api/REFERENCE.md, nasty parts included: rotating refresh tokens with
the 570 s rule, OData v2 verbose JSON with absolute `__next` links, Int64 as strings, `/Date(ms)/`,
calendar-minute rate limits with their headers, Atom XML when `Accept: application/json` is
missing. One lock guards all state, so several clients may call at once (and get counted).
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import itertools
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from fake_exact.auth import DEFAULT_LOGIN, TokenAuthority, TokenReply
from fake_exact.clock import to_wire, wall_ms
from fake_exact.data import (
    CATALOG_PATH,
    DELETED_PATH,
    Dataset,
    RowFactory,
    StreamSpec,
    Table,
    field_json,
    odata_date,
    read_catalog,
)
from fake_exact.limits import Fault, RateLimiter
from fake_exact.query import (
    ODataError,
    Query,
    check_mandatory_filter,
    parse_guid_literal,
    parse_int_token,
    parse_mandatory_datetime,
    parse_modified_filter,
    parse_query,
    parse_select,
    parse_sync_filter,
    parse_top,
)

JSON_TYPE = "application/json; charset=utf-8"
SYNC_TIMESTAMP_PATH = "read/sync/Sync/SyncTimestamp"
# The entities SyncTimestamp serves (Exact's reference page).
SYNC_TIMESTAMP_END_POINTS = frozenset(
    [
        "QuotationHeaders",
        "QuotationLines",
        "TransactionLines",
        "ItemStorageLocations",
        "ShopOrders",
        "ShopOrderMaterialPlans",
        "ShopOrderRoutingStepPlans",
        "ShopOrderPurchasePlanning",
        "ShopOrderSubOrders",
        "MaterialIssues",
        "BillOfMaterialVersions",
        "BillOfMaterialMaterials",
        "PurchaseOrders",
        "Projects",
        "ProjectPlanning",
        "ProjectWBS",
        "TimeCostTransactions",
        "SalesInvoices",
        "GoodsDeliveries",
        "GoodsDeliveryLines",
        "SalesOrderHeaders",
        "SalesOrderLines",
        "Subscriptions",
        "SubscriptionLines",
    ]
)
# The login's divisions: generated from `divisions` and `forbidden_divisions`, not at random.
LOGIN_DIVISIONS_PATH = "system/Divisions"
API_PREFIX = "/api/v1/"
IIS_PAGE = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\r\n'
    '<html xmlns="http://www.w3.org/1999/xhtml"><head>'
    '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"/>'
    '<title>{status} - {phrase}</title></head><body><div id="header"><h1>Server Error</h1></div>'
    '<div id="content"><fieldset><h2>{status} - {phrase}</h2>'
    "<h3>The service is unavailable. Please try again later.</h3></fieldset></div></body></html>"
)


@dataclass(frozen=True)
class OtherLogin:
    """Another Exact user who authorized the same app: own tokens, own divisions, own Me."""

    user_id: str  # current/Me's UserID
    divisions: tuple[int, ...]
    current_division: int


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # > 0: the whole answer (status line, headers, body) goes out one byte every so many
    # seconds, as from a proxy or server that trickles.
    trickle_seconds: float = 0.0


def exact_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """Exact's error shape: {"error":{"code":"","message":{"lang":"","value":...}}}."""
    body = {"error": {"code": "", "message": {"lang": "", "value": message}}}
    return Response(status, json.dumps(body).encode(), JSON_TYPE, dict(headers or {}))


def json_response(status: int, body: object, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status, json.dumps(body).encode(), JSON_TYPE, dict(headers or {}))


@dataclass(frozen=True)
class _Replay:
    path_contains: str
    query_contains: str | None
    response: Response


@dataclass
class _Trickle:
    path_contains: str
    seconds_per_byte: float
    left: int


@dataclass(frozen=True)
class Route:
    """Where a data URL points: division (None for current/Me, system/Users) and entity path."""

    division: int | None
    beta: bool
    path: str

    def uri_base(self, base_url: str) -> str:
        if self.division is None:
            return f"{base_url}{API_PREFIX}{self.path}"
        beta = "beta/" if self.beta else ""
        return f"{base_url}{API_PREFIX}{beta}{self.division}/{self.path}"


def parse_route(path: str) -> Route:
    segments = unquote(path[len(API_PREFIX) :]).strip("/").split("/")
    beta = segments[0] == "beta" and len(segments) > 1
    if beta:
        segments = segments[1:]
    if segments[0].isdigit():
        return Route(int(segments[0]), beta, "/".join(segments[1:]))
    return Route(None, beta, "/".join(segments))


class FakeExact:
    """The fake server plus the knobs tests turn (faults, clock, data changes) and read (calls)."""

    def __init__(
        self,
        *,
        divisions: Iterable[int] = (1001,),
        forbidden_divisions: Iterable[int] = (),
        current_division: int | None = None,
        rows: Mapping[str, int] | None = None,
        default_rows: int | None = None,
        streams: Iterable[str] | None = None,
        catalog_path: Path = CATALOG_PATH,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        initial_refresh_token: str = "fake-initial-refresh-token",
        access_token_lifetime: int = 600,
        min_refresh_interval: float = 570,
        minutely_limit: int = 60,
        minute_window_seconds: float = 60.0,
        daily_limit: int = 5000,
        seed: int = 1,
        spread_dates: bool = False,
        port: int = 0,
    ) -> None:
        self.divisions = tuple(int(d) for d in divisions)
        # Listed by system/Divisions for the user, but every request into them is refused (403).
        self.forbidden_divisions = tuple(int(d) for d in forbidden_divisions)
        self.division_moves: dict[int, int] = {}  # division -> DivisionMoveDate (epoch ms)
        self.seed = seed
        self.current_division = self.divisions[0] if current_division is None else current_division
        self.client_id = client_id
        self.client_secret = client_secret
        self.initial_refresh_token = initial_refresh_token
        self.other_logins: dict[str, OtherLogin] = {}  # by UserID: see add_login
        self._lock = threading.Lock()
        catalog = read_catalog(catalog_path)
        self.data = Dataset(
            catalog,
            current_division=self.current_division,
            rows=rows,
            default_rows=default_rows,
            seed=seed,
            spread_dates=spread_dates,
        )
        self._routes = self._build_routes([*catalog.streams, *catalog.alternatives], streams)
        self._clock_offset = 0.0
        self.auth = TokenAuthority(
            client_id=client_id,
            client_secret=client_secret,
            initial_refresh_token=initial_refresh_token,
            access_token_lifetime=access_token_lifetime,
            min_refresh_interval=min_refresh_interval,
            clock=self.now,
        )
        self.limits = RateLimiter(minutely_limit, minute_window_seconds, daily_limit)
        self._faults: list[Fault] = []
        self._replays: list[_Replay] = []
        self._trickles: list[_Trickle] = []  # see trickle_next
        # Called (outside the lock) with each token answer before it is sent: see
        # on_token_answer.
        self._token_answer_hook: Callable[[Response], None] | None = None
        self._mandatory_filters: dict[tuple[str, int | None], tuple[str, ...]] = {}
        # (stream, division) -> (field, Exact's message with {field} and {entity} in it).
        self._refused_fields: dict[tuple[str, int | None], tuple[str, str]] = {}
        # (division or None for all, Reason header or None, path substring or None): see forbid.
        self._forbidden: list[tuple[int | None, str | None, str | None]] = []
        self._calls: list[tuple[str, str, str, int]] = []
        self._call_times: list[float] = []  # when each of `_calls` arrived (real time, epoch)
        self._in_flight = 0
        self._max_in_flight = 0
        self._without_accept = 0
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def _build_routes(
        specs: list[StreamSpec], names: Iterable[str] | None
    ) -> dict[tuple[bool, str], StreamSpec]:
        # Every endpoint of a served stream: its default one and its alternatives.
        served = specs
        if names is not None:
            wanted = set(names)
            unknown = sorted(wanted - {spec.name for spec in specs})
            if unknown:
                raise ValueError(f"unknown streams: {unknown}")
            served = [spec for spec in specs if spec.name in wanted]
        return {(spec.api == "beta", spec.path): spec for spec in served}

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeExact:
        self._server = _Server(("127.0.0.1", self._port), _Handler)
        self._server.fake = self
        # A short poll interval makes stop() quick; idle polling costs next to nothing.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-exact", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeExact:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeExact is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- clock and OAuth ---------------------------------------------------------------------
    def now(self) -> float:
        """The fake clock (real time plus advance_clock); used only for token timing."""
        return time.time() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        with self._lock:
            self._clock_offset += seconds

    def issue_authorization_code(self, redirect_uri: str, login: str = DEFAULT_LOGIN) -> str:
        """A code as Exact's login page gives it: for the first login, or for `login` (a UserID
        from add_login)."""
        with self._lock:
            return self.auth.issue_code(redirect_uri, login)

    def add_login(self, *, refresh_token: str, divisions: Iterable[int]) -> str:
        """Another Exact user authorizes the same app (same client_id): from `refresh_token` on
        it has its own chain of tokens, and its tokens see only its `divisions` and its own
        current/Me (UserID, CurrentDivision). Returns its UserID."""
        with self._lock:
            codes = tuple(int(d) for d in divisions)
            user_id = f"00000000-0000-4000-8000-{len(self.other_logins) + 1:012x}"
            self.other_logins[user_id] = OtherLogin(user_id, codes, codes[0])
            self.auth.add_login(user_id, refresh_token)
            return user_id

    @property
    def user_id(self) -> str:
        """The first login's UserID, as its current/Me says."""
        with self._lock:
            row = self.data.table(self.data.spec("me"), 0).raw_row(0)
        return str(row["UserID"])

    def grant_access_token(self) -> str:
        """A valid access token without a refresh (for tests that only need data calls)."""
        with self._lock:
            return self.auth.issue_direct()

    def issued_secrets(self) -> list[str]:
        with self._lock:
            return list(self.auth.issued)

    def expire_access_tokens(self) -> None:
        with self._lock:
            self.auth.expire_all()

    def keep_refresh_token_next(self, n: int = 1) -> None:
        """The next `n` refreshes renew only the access token: the answer carries no
        refresh_token and the refresh token sent stays valid, as RFC 6749 section 6 allows a
        server to do."""
        with self._lock:
            self.auth.refreshes_keeping_token += n

    @property
    def token_calls(self) -> int:
        return self.auth.token_calls

    @property
    def refresh_count(self) -> int:
        return self.auth.refresh_count

    # --- faults and limits -------------------------------------------------------------------
    def fail_next(
        self, n: int = 1, status: int = 503, body: str = "json", path_contains: str | None = None
    ) -> None:
        if body not in ("json", "html", "empty"):
            raise ValueError(f"body must be json, html or empty, not {body!r}")
        self._add_fault(Fault("fail", n, path_contains, status=status, body=body))

    def drop_next(self, n: int = 1, path_contains: str | None = None) -> None:
        self._add_fault(Fault("drop", n, path_contains))

    def rate_limit_next(
        self, n: int = 1, headers: str = "minutely", path_contains: str | None = None
    ) -> None:
        if headers not in ("minutely", "none"):
            raise ValueError(f"headers must be minutely or none, not {headers!r}")
        self._add_fault(Fault("rate_limit", n, path_contains, headers=headers))

    def clear_faults(self) -> None:
        """Faults still waiting (`fail_next`, `drop_next`, ...) are dropped: Exact is well again."""
        with self._lock:
            self._faults = []

    def _add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def replay_next(
        self,
        path_contains: str,
        body: bytes | str,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = JSON_TYPE,
        *,
        query_contains: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests whose path contains `path_contains` (and whose raw
        query contains `query_contains`, e.g. "skiptoken" for the pages after the first) with
        this response, as recorded (tests replay responses shaped like published Exact ones,
        or what a proxy or cache hands back), instead of making one. Replays are used in the
        order they were added."""
        raw = body.encode() if isinstance(body, str) else body
        with self._lock:
            for _ in range(times):
                self._replays.append(
                    _Replay(
                        path_contains,
                        query_contains,
                        Response(status, raw, content_type, dict(headers or {})),
                    )
                )

    def trickle_next(self, path_contains: str, seconds_per_byte: float, n: int = 1) -> None:
        """The next `n` answers to requests whose path contains `path_contains` go out one byte
        every `seconds_per_byte` (the answer itself is the usual one)."""
        with self._lock:
            self._trickles.append(_Trickle(path_contains, seconds_per_byte, n))

    def _take_trickle(self, path: str) -> float:
        for trickle in self._trickles:
            if trickle.path_contains in path:
                trickle.left -= 1
                self._trickles = [t for t in self._trickles if t.left > 0]
                return trickle.seconds_per_byte
        return 0.0

    def on_token_answer(self, hook: Callable[[Response], None] | None) -> None:
        """Call `hook(response)` in the server thread after a token request was decided (a
        refresh already spent the old refresh token) and before the answer is sent: a test
        holds the answer there (SIGTERM mid-POST) or breaks the client's disk meanwhile."""
        with self._lock:
            self._token_answer_hook = hook

    def _take_replay(self, path: str, query: str) -> Response | None:
        for position, replay in enumerate(self._replays):
            if replay.path_contains in path and (
                replay.query_contains is None or replay.query_contains in unquote(query)
            ):
                del self._replays[position]
                return replace(replay.response, headers=dict(replay.response.headers))
        return None

    def require_filter(
        self, stream: str, fields: Iterable[str] = ("Code", "Name"), division: int | None = None
    ) -> None:
        """From now on `stream` (in `division`, or in every division) answers 400 "mandatory
        filtering" unless its `$filter` names one of `fields`."""
        self.data.spec(stream)  # unknown names fail here, not silently later
        with self._lock:
            self._mandatory_filters[(stream, division)] = tuple(fields)

    def refuse_select(
        self,
        stream: str,
        field: str,
        division: int | None = None,
        message: str = "'{field}' is not a valid property of {entity}.",
    ) -> None:
        """From now on `stream` (in `division`, or in every division) answers 400 to a `$select`
        naming `field`, as Exact does for a property it dropped or renamed. `message` may take
        the forms of real OData v2 servers, e.g. "Could not find a property named '{field}' on
        type 'Exact.Web.Api.Models.{entity}'." or "The property name '{field}' is not valid"."""
        spec = self.data.spec(stream)
        if field not in spec.fields:
            raise ValueError(f"{stream} has no field {field!r}")
        with self._lock:
            self._refused_fields[(stream, division)] = (field, message)

    def forbid(
        self,
        division: int | None,
        reason: str | None = "DivisionBlocked",
        path_contains: str | None = None,
    ) -> None:
        """From now on every request into `division` (None: every data request, current/Me
        included), or only those whose path contains `path_contains`, answers 403 with Exact's
        `Reason` header (BlockedUser, InactiveUser, BlockedCustomer, LicenseExpired,
        DivisionBlocked, NoDivisionAccess); `reason=None` answers a plain 403, as for an entity
        the user has no rights to."""
        with self._lock:
            self._forbidden.append((division, reason, path_contains))

    def set_daily_remaining(self, division: int, n: int) -> None:
        with self._lock:
            self.limits.set_daily_remaining(division, n, time.time())

    # --- observations ------------------------------------------------------------------------
    @property
    def calls(self) -> list[tuple[str, str, str, int]]:
        """(method, path, query string, status) of every request; status 0 = dropped."""
        with self._lock:
            return list(self._calls)

    @property
    def call_times(self) -> list[float]:
        """When each request of `calls` arrived (real time: the clock the rate limits use)."""
        with self._lock:
            return list(self._call_times)

    def data_calls(self, path_contains: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for _, path, _, _ in self._calls
                if path.startswith(API_PREFIX) and (path_contains is None or path_contains in path)
            )

    @property
    def max_concurrent_requests(self) -> int:
        return self._max_in_flight

    @property
    def requests_without_accept(self) -> int:
        return self._without_accept

    def stats(self) -> dict[str, object]:
        with self._lock:
            by_path = Counter(path for _, path, _, _ in self._calls)
            return {
                "data_calls": sum(n for p, n in by_path.items() if p.startswith(API_PREFIX)),
                "token_calls": self.auth.token_calls,
                "max_concurrent_requests": self._max_in_flight,
                "requests_without_accept": self._without_accept,
                "calls_by_path": dict(by_path),
            }

    # --- data changes ------------------------------------------------------------------------
    def mutate(
        self,
        stream: str,
        division: int | None = None,
        update: int = 0,
        insert: int = 0,
        *,
        start: int = 0,
        at_ms: int | None = None,
        values: Mapping[str, object] | None = None,
    ) -> list[dict[str, object]]:
        """Change `update` rows from the `start`-th existing one and append `insert` rows, as
        modified now (or at the instant `at_ms`), with `values` set; returns them (canonical)."""
        with self._lock:
            return self.data.mutate(
                stream,
                self._division(division),
                update=update,
                insert=insert,
                now_ms=self._now_ms() if at_ms is None else at_ms,
                start=start,
                values=values,
            )

    def move_division(self, division: int) -> None:
        """Exact moves the division to another database: a new DivisionMoveDate in
        system/Divisions. (Exact also renumbers the division's Timestamps; the fake keeps them,
        so a test sees the resync in the requests: `Timestamp gt 1` again.)"""
        with self._lock:
            self.division_moves[division] = self._now_ms()

    def delete(self, stream: str, division: int, count: int) -> list[object]:
        """Remove the first `count` rows; returns their keys and logs them in `deletions`."""
        with self._lock:
            return self.data.delete(stream, division, count, now_ms=self._now_ms())

    def close_years(self, division: int, through: int) -> list[int]:
        """The accountant runs Exact's year-end closing for every year up to `through` not
        closed yet (docs/fake-books.md); returns the new entries' indices."""
        with self._lock:
            return self.data.close_years(division, through, now_ms=self._now_ms())

    def expire_deletion_log(self) -> None:
        """Two months pass for the deletion log: every entry so far drops out of sync/Deleted."""
        with self._lock:
            self.data.deletion_log_kept_from_ms = self._now_ms() + 1

    @property
    def deletions(self) -> list[dict[str, object]]:
        with self._lock:
            return list(self.data.deletions)

    def expected_rows(
        self, stream: str, division: int | None = None, api: str | None = None
    ) -> Iterator[dict[str, object]]:
        """Every current row with all fields, as a full unfiltered read returns it (from the
        stream's default endpoint, or the one of `api`).

        Lazy, in chunks under the lock: 300,000 rows as dicts would not fit in a test's memory.
        """
        with self._lock:
            if self.data.spec(stream).path == LOGIN_DIVISIONS_PATH:
                return iter(self._login_division_rows())
            rows = self.data.expected_rows(stream, self._division(division), api)  # raises now
        return self._locked_chunks(rows)

    def _locked_chunks(self, rows: Iterator[dict[str, object]]) -> Iterator[dict[str, object]]:
        while True:
            with self._lock:
                chunk = list(itertools.islice(rows, 1000))
            if not chunk:
                return
            yield from chunk

    def row_count(self, stream: str, division: int | None = None, api: str | None = None) -> int:
        with self._lock:
            if self.data.spec(stream).path == LOGIN_DIVISIONS_PATH:
                return len(self._login_division_rows())
            return self.data.row_count(stream, self._division(division), api)

    def _division(self, division: int | None) -> int:
        return self.current_division if division is None else division

    def _now_ms(self) -> int:
        return int(self.now() * 1000)

    # --- request handling (called by _Handler) -----------------------------------------------
    def _begin_data(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _end_data(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Response | None:
        """One request -> a Response, or None to drop the connection without answering.

        `headers` has lower-case names.
        """
        if path == "/_fake/stats":
            return json_response(200, self.stats())
        with self._lock:
            self._call_times.append(time.time())
            response = self._route(method, path, query, headers, body)
            status = 0 if response is None else response.status
            self._calls.append((method, path, query, status))
            if response is not None:
                response.trickle_seconds = self._take_trickle(path)
            hook = self._token_answer_hook if path == "/api/oauth2/token" else None
        if hook is not None and response is not None:
            hook(response)
        return response

    def _route(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Response | None:
        replay = self._take_replay(path, query)
        if replay is not None:
            return replay
        if path == "/api/oauth2/token":
            if method != "POST":
                return exact_error(405, "Method not allowed")
            return self._token(headers, body)
        if path == "/api/oauth2/auth" and method == "GET":
            return self._authorize(query)
        if path.startswith(API_PREFIX):
            return self._data(method, path, query, headers)
        return exact_error(404, "Not found")

    # OAuth endpoints
    def _token(self, headers: Mapping[str, str], body: bytes) -> Response:
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        basic = headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
            form.setdefault("client_id", unquote(user))
            form.setdefault("client_secret", unquote(password))
        reply: TokenReply = self.auth.token_request(form)
        extra = {"Cache-Control": "no-store", **reply.headers}
        return json_response(reply.status, reply.body, extra)

    def _authorize(self, raw_query: str) -> Response:
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        if params.get("client_id") != self.client_id:
            return Response(400, b"Unknown client_id", "text/plain")
        redirect_uri = params.get("redirect_uri", "")
        if params.get("response_type") != "code" or not redirect_uri:
            return Response(400, b"Invalid authorization request", "text/plain")
        reply = {"code": self.auth.issue_code(redirect_uri)}
        if params.get("state"):
            reply["state"] = params["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return Response(302, headers={"Location": redirect_uri + separator + urlencode(reply)})

    # data endpoints
    def _data(
        self, method: str, path: str, raw_query: str, headers: Mapping[str, str]
    ) -> Response | None:
        accepts_json = "application/json" in headers.get("accept", "")
        if not accepts_json:
            self._without_accept += 1
        route = parse_route(path)
        fault = self._take_fault(path)
        if fault is not None:
            return self._fault_response(fault, route)
        if not self.auth.access_ok(_bearer(headers)):
            return exact_error(401, "Access token is expired or invalid.")
        login = self.other_logins.get(self.auth.login_of(_bearer(headers)))
        divisions = self.divisions if login is None else login.divisions
        if route.division is not None and route.division not in divisions:
            return exact_error(403, "Forbidden")
        forbidden = self._forbidden_response(route, path)
        if forbidden is not None:
            return forbidden
        limit_headers: dict[str, str] = {}
        if route.division is not None:
            admitted, limit_headers = self.limits.admit(route.division, time.time())
            if not admitted:
                return Response(429, headers=limit_headers)  # Exact sends no body on 429
        if route.path == SYNC_TIMESTAMP_PATH and route.division is not None:
            try:
                body = self._sync_timestamp(route.division, parse_query(raw_query))
            except ODataError as error:
                return exact_error(error.status, error.message, limit_headers)
            return Response(200, body, JSON_TYPE, limit_headers)
        spec = self._routes.get((route.beta, route.path))
        if spec is None or spec.division_in_path != (route.division is not None):
            return exact_error(404, "Resource not found.", limit_headers)
        if method != "GET":
            return exact_error(405, "Method not allowed for this resource.", limit_headers)
        if not accepts_json:
            return Response(200, _atom_feed(spec, route, self.base_url), "application/atom+xml")
        try:
            body = self._page(spec, route, parse_query(raw_query), path, login)
        except ODataError as error:
            return exact_error(error.status, error.message, limit_headers)
        return Response(200, body, JSON_TYPE, limit_headers)

    def _forbidden_response(self, route: Route, path: str) -> Response | None:
        for division, reason, path_contains in self._forbidden:
            if division not in (None, route.division):
                continue
            if path_contains is None or path_contains in path:
                return exact_error(403, "Forbidden", {"Reason": reason} if reason else None)
        return None

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.matches(path):
                fault.remaining -= 1
                self._faults = [f for f in self._faults if f.remaining > 0]
                return fault
        return None

    def _fault_response(self, fault: Fault, route: Route) -> Response | None:
        if fault.kind == "drop":
            return None
        if fault.kind == "rate_limit":
            headers = {}
            if fault.headers == "minutely" and route.division is not None:
                headers = self.limits.minutely_headers(route.division, time.time())
                headers["X-RateLimit-Minutely-Remaining"] = "0"
            return Response(429, headers=headers)
        phrase = HTTPStatus(fault.status).phrase
        if fault.body == "html":
            page = IIS_PAGE.format(status=fault.status, phrase=phrase)
            return Response(fault.status, page.encode(), "text/html")
        if fault.body == "empty":
            return Response(fault.status)
        return exact_error(fault.status, phrase)

    def _page(
        self, spec: StreamSpec, route: Route, query: Query, path: str, login: OtherLogin | None
    ) -> bytes:
        division = route.division or 0
        required = self._mandatory_filters.get(
            (spec.name, route.division)
        ) or self._mandatory_filters.get((spec.name, None))
        if required and not query.params.get("$skiptoken"):
            check_mandatory_filter(query, required)
        refused = self._refused_fields.get((spec.name, route.division)) or self._refused_fields.get(
            (spec.name, None)
        )
        asked = {name.strip() for name in query.params.get("$select", "").split(",")}
        if refused and refused[0] in asked:
            raise ODataError(400, refused[1].format(field=refused[0], entity=spec.entity))
        if spec.child_of is not None:
            return self._child_page(spec, division, route, query)
        if spec.path == DELETED_PATH:
            return self._deleted_page(spec, division, query, path)
        if spec.path == LOGIN_DIVISIONS_PATH:
            return self._login_divisions_page(spec, route, query, login)
        select = parse_select(spec, query)
        top = parse_top(query)
        limit = spec.page_size if top is None else min(top, spec.page_size)
        if spec.name == "me" and login is not None:
            table = self.data.me_table(spec, login.user_id, login.current_division)
        else:
            table = self.data.table(spec, division)
        token = query.params.get("$skiptoken")
        if spec.is_sync:
            after = parse_sync_filter(query)
            if token:
                after = max(after or 0, parse_int_token(token))
            indices = table.sync_indices(after, limit + 1)
        else:
            bounds = parse_modified_filter(spec, query)
            start = _index_after(table, token) if token else 0
            indices = table.index_indices(start, bounds, limit + 1)
        more = len(indices) > limit and (top is None or top > spec.page_size)
        indices = indices[:limit]
        rows = table.rows_json(indices, select, route.uri_base(self.base_url))
        tail = ""
        if more:
            next_url = f"{self.base_url}{path}?{query.next_query(_skiptoken(table, indices[-1]))}"
            tail = ',"__next":' + json.dumps(next_url)
        return ('{"d":{"results":[' + ",".join(rows) + "]" + tail + "}}").encode()

    def _child_page(self, spec: StreamSpec, division: int, route: Route, query: Query) -> bytes:
        """A read function fed per parent row: `?itemId=guid'..'[&modified=datetime'..']`.

        Every parameter the catalog names is mandatory, as on Exact's reference pages.
        """
        assert spec.child_of is not None
        select = parse_select(spec, query)
        table = self.data.child_table(spec, division)
        parent, since = None, None
        for name, source in dict(spec.child_of["parameters"]).items():
            if str(source).startswith("guid"):
                value = parse_guid_literal(query.params.get(name), name)
                parent = table.parent.factory.index_of_guid("ID", value)
            else:
                since = parse_mandatory_datetime(query.params.get(name), name)
        rows = [] if parent is None else table.rows_for(parent, since)
        uri_base = route.uri_base(self.base_url)
        type_name = f"Exact.Web.Api.Models.{spec.entity}"
        results = []
        for row in rows:
            key = ",".join(_key_part(spec, k, row[k]) for k in spec.keys if k in row)
            meta = f'{{"__metadata":{{"uri":"{uri_base}({key})","type":"{type_name}"}}'
            results.append(",".join([meta, *(field_json(n, row[n]) for n in select)]) + "}")
        return ('{"d":{"results":[' + ",".join(results) + "]}}").encode()

    def _sync_timestamp(self, division: int, query: Query) -> bytes:
        """read/sync/Sync/SyncTimestamp?modified=datetime'..'&endPoint='TransactionLines': the
        first row (in Timestamp order) modified at or after the date; no row if there is none."""
        since = parse_mandatory_datetime(query.params.get("modified"), "modified")
        end_point = query.params.get("endPoint")
        if end_point is None:
            raise ODataError(400, "The parameter 'endPoint' is mandatory.")
        name = end_point.strip().strip("'")
        specs = [s for s in self.data.specs.values() if s.is_sync and s.entity == name]
        if name not in SYNC_TIMESTAMP_END_POINTS or not specs:
            raise ODataError(400, f"endPoint '{name}' is not supported.")
        table = self.data.table(specs[0], division)
        for index in table.sync_indices(None, table.n):
            if wall_ms(table.modified_ms(index)) >= since:  # on Exact's clock
                row = {
                    "Modified": to_wire(odata_date(table.modified_ms(index))),
                    "API": name,
                    "TimeStampAsBigInt": str(table.timestamp(index)),
                }
                return json.dumps({"d": {"results": [row]}}).encode()
        return b'{"d":{"results":[]}}'

    def _login_division_rows(self, login: OtherLogin | None = None) -> list[dict[str, object]]:
        spec = self.data.spec("system_divisions")
        codes = sorted({*self.divisions, *self.forbidden_divisions})
        current = self.current_division
        if login is not None:
            codes, current = sorted(login.divisions), login.current_division
        generated = Table(RowFactory(spec, 0, self.seed, {}), len(codes))
        rows = []
        for index, code in enumerate(codes):
            moved = self.division_moves.get(code)
            rows.append(
                generated.raw_row(index)
                | {
                    "Code": code,
                    "Current": code == current,
                    "Description": f"Administration {code}",
                    "DivisionMoveDate": None if moved is None else odata_date(moved),
                }
            )
        return rows

    def _login_divisions_page(
        self, spec: StreamSpec, route: Route, query: Query, login: OtherLogin | None
    ) -> bytes:
        """system/Divisions: every division of the login (one page; $top honoured)."""
        select = parse_select(spec, query)
        rows = self._login_division_rows(login)
        if len(rows) > spec.page_size:
            raise ODataError(500, "the fake serves at most one page of divisions")
        top = parse_top(query)
        uri_base = route.uri_base(self.base_url)
        results = [
            f'{{"__metadata":{{"uri":"{uri_base}({row["Code"]})"}},'
            + ",".join(field_json(name, row[name]) for name in select)
            + "}"
            for row in rows[:top]
        ]
        return ('{"d":{"results":[' + ",".join(results) + "]}}").encode()

    def _deleted_page(self, spec: StreamSpec, division: int, query: Query, path: str) -> bytes:
        """sync/Deleted from the deletion log that `delete` writes."""
        select = parse_select(spec, query)
        after = parse_sync_filter(query) or 0
        token = query.params.get("$skiptoken")
        if token:
            after = max(after, parse_int_token(token))
        log = self.data.deletion_log(division, after)
        page = log[: spec.page_size]
        rows = ["{" + ",".join(field_json(n, entry[n]) for n in select) + "}" for entry in page]
        tail = ""
        if len(log) > spec.page_size:
            last = int(str(page[-1]["Timestamp"]))
            next_url = f"{self.base_url}{path}?{query.next_query(f'{last}L')}"
            tail = ',"__next":' + json.dumps(next_url)
        return ('{"d":{"results":[' + ",".join(rows) + "]" + tail + "}}").encode()


def _key_part(spec: StreamSpec, name: str, value: object) -> str:
    if spec.fields[name] == "Edm.Guid":
        return f"{name}=guid'{value}'"
    return f"{name}={value}" if isinstance(value, int) else f"{name}='{value}'"


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _skiptoken(table: Table, last: int) -> str:
    """Sync: the page's last Timestamp; others: the last key (`guid'..'`) or row number (`nL`)."""
    if table.spec.is_sync:
        return f"{table.timestamp(last)}L"
    guid_key = table.factory.guid_key
    if guid_key is not None:
        return f"guid'{table.factory.key_value(guid_key, last)}'"
    return f"{last}L"


def _index_after(table: Table, token: str) -> int:
    guid_key = table.factory.guid_key
    if token.startswith("guid'") and guid_key is not None:
        index = table.factory.index_of_guid(guid_key, parse_guid_literal(token, "$skiptoken"))
        if index is None:
            raise ODataError(400, "The $skiptoken is not valid.")
        return index + 1
    return parse_int_token(token) + 1


def _atom_feed(spec: StreamSpec, route: Route, base_url: str) -> bytes:
    """What Exact sends without `Accept: application/json`; a client must never get here."""
    uri = route.uri_base(base_url)
    updated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<feed xml:base="{base_url}{API_PREFIX}" xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:d="http://schemas.microsoft.com/ado/2007/08/dataservices" '
        'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata">'
        f'<id>{uri}</id><title type="text">{spec.entity}</title><updated>{updated}</updated>'
        f'<link rel="self" title="{spec.entity}" href="{spec.entity}" /></feed>'
    ).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeExact


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real client/server pair
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to every small response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: tests read `calls` instead

    def date_time_string(self, timestamp: float | None = None) -> str:
        # Exact's `Date` header tells its own clock: here, the fake clock.
        return email.utils.formatdate(
            self.server.fake.now() if timestamp is None else timestamp, usegmt=True
        )

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        is_data = split.path.startswith(API_PREFIX)
        if is_data:
            fake._begin_data()
        try:
            headers = {name.lower(): value for name, value in self.headers.items()}
            response = fake.handle(method, split.path, split.query, headers, body)
            if response is None:
                self._drop()
            else:
                self._write(response)
        finally:
            if is_data:
                fake._end_data()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client may have gone already
            self.connection.shutdown(socket.SHUT_RDWR)

    def _write(self, response: Response) -> None:
        if response.trickle_seconds > 0:
            self._trickle(response)
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body:
            self.wfile.write(response.body)

    def _trickle(self, response: Response) -> None:
        phrase = HTTPStatus(response.status).phrase
        head = [f"HTTP/1.1 {response.status} {phrase}"]
        head += [f"{name}: {value}" for name, value in response.headers.items()]
        if response.content_type:
            head.append(f"Content-Type: {response.content_type}")
        head.append(f"Content-Length: {len(response.body)}")
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + response.body
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client gave up: what the test wants
            for at in range(len(raw)):
                self.wfile.write(raw[at : at + 1])
                self.wfile.flush()
                time.sleep(response.trickle_seconds)
