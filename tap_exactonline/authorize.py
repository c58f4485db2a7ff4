"""`tap-exactonline-auth`: the first authorization of the app, once per Exact login.

Prints Exact's authorize URL, receives the authorization code (on the redirect URI on localhost,
or as the pasted callback URL), exchanges it within its 3 minutes, and writes the tokens where
the tap will find them: the configured `token_store`, else `.exactonline/tokens.json` (a folder
git ignores), named in `.env`. Everything that can be checked is checked before the login, and
the browser shows the real outcome of the exchange. Tokens are never printed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import secrets
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from tap_exactonline.auth import INVALID_CLIENT_MESSAGE
from tap_exactonline.callback import (
    LOOPBACK_HOSTS,
    AuthorizationFailed,
    code_from_callback,
    listen_for_callback,
    printable,
)
from tap_exactonline.deadline import CallDeadlineExceeded, DeadlineSession
from tap_exactonline.exact_login import login_of
from tap_exactonline.redact import scrub
from tap_exactonline.settings import (
    FERNET_KEY_PROBLEM,
    REGIONS,
    base_url_problem,
    key_problem,
    secret_values,
    site_of,
    token_url,
)
from tap_exactonline.token_stores import (
    DEFAULT_TOKEN_FILE,
    TokenStore,
    open_token_store,
    tells_logins_apart,
    token_store_problem,
)
from tap_exactonline.tokens import (
    TokenRefreshError,
    TokenSet,
    codec_for,
    fingerprint,
    json_or_empty,
)

ENV_PREFIX = "TAP_EXACTONLINE_"
DEFAULT_REDIRECT_URI = "http://localhost:8765/callback"
LISTEN_SECONDS = 300


def load_settings(config_files: list[str]) -> dict[str, Any]:
    """Settings from `--config` files, then TAP_EXACTONLINE_* variables (Meltano sets these)."""
    settings: dict[str, Any] = {}
    for name in config_files:
        try:
            settings.update(json.loads(Path(name).read_text()))
        except (OSError, ValueError) as exc:
            reason = type(exc).__name__
            raise AuthorizationFailed(f"--config {name} cannot be read ({reason})") from None
    for key, value in os.environ.items():
        if key.startswith(ENV_PREFIX) and value:
            settings.setdefault(key.removeprefix(ENV_PREFIX).lower(), value)
    for required in ("client_id", "client_secret"):
        if not settings.get(required):
            raise AuthorizationFailed(f"Setting `{required}` is missing.")
    return settings


def origin_of(settings: dict[str, Any]) -> str:
    region = str(settings.get("region") or "nl")
    if not settings.get("base_url") and region not in REGIONS:
        raise AuthorizationFailed(f"Setting `region` must be one of {', '.join(REGIONS)}.")
    problem = base_url_problem(str(settings["base_url"])) if settings.get("base_url") else ""
    if problem:
        raise AuthorizationFailed(problem)
    return site_of(settings)


def authorize_url(origin: str, client_id: str, redirect_uri: str, state: str) -> str:
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "force_login": "0",
            "state": state,
        }
    )
    return f"{origin}/api/oauth2/auth?{query}"


def exchange_code(
    origin: str, settings: dict[str, Any], code: str, redirect_uri: str
) -> dict[str, Any]:
    try:
        with DeadlineSession() as session:
            response = session.post(
                token_url(origin),
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "client_id": settings["client_id"],
                    "client_secret": settings["client_secret"],
                },
                headers={"Accept": "application/json"},
                timeout=60,
                allow_redirects=False,  # a 307 would carry the code and the secret elsewhere
            )
    except (requests.RequestException, CallDeadlineExceeded) as exc:
        reason = str(exc) if isinstance(exc, CallDeadlineExceeded) else type(exc).__name__
        raise AuthorizationFailed(
            f"Exact's token endpoint could not be reached ({reason})."
        ) from None
    if response.is_redirect:
        raise AuthorizationFailed(
            f"Exact's token endpoint answered HTTP {response.status_code}, a redirect (not "
            "followed, so the code and the client secret stay here): check `base_url`."
        )
    body = json_or_empty(response)
    if response.status_code == 200 and body.get("access_token"):
        if not body.get("refresh_token"):
            raise AuthorizationFailed(
                "Exact's token answer carried no refresh_token, so the tap could not renew "
                "the access token: run this command again."
            )
        return dict(body)
    # Shown to the user: whatever answered (a proxy, say) must not act on the terminal.
    error = printable(str(body.get("error") or response.status_code))
    description = str(body.get("error_description") or "").lower()
    if error == "invalid_client":
        # Logging in again would not help: the settings are wrong, not the authorization.
        raise AuthorizationFailed(f"{INVALID_CLIENT_MESSAGE}, then run this command again.")
    if "redirect" in description:
        raise AuthorizationFailed(
            f"Exact refused the redirect URI {redirect_uri}: it must be exactly the one registered "
            "for the app in the App Center (set `redirect_uri`)."
        )
    if error == "invalid_grant":
        raise AuthorizationFailed(
            "Exact refused the authorization code: it is valid for 3 minutes and only once. "
            "Run the command again and finish within 3 minutes."
        )
    raise AuthorizationFailed(f"Exact's token endpoint answered {error}.")


class Terminal:
    """What the command shows, every secret of the settings masked as in the tap's logs (a
    password in a `token_store` URL too: a store's name may carry its URL)."""

    def __init__(self) -> None:
        self.secrets: list[str] = []

    def show(self, text: str) -> None:
        print(scrub(text, self.secrets), flush=True)

    def complain(self, text: str) -> None:
        print(f"tap-exactonline-auth: {scrub(text, self.secrets)}", file=sys.stderr, flush=True)


def open_store(settings: dict[str, Any], env_file: Path, terminal: Terminal) -> TokenStore:
    """The store the new tokens go to, opened before the browser step: a setting that cannot
    work fails now, not after Exact has spent the single-use authorization code."""
    location = settings.get("token_store")
    if location and (problem := token_store_problem(str(location))):
        raise AuthorizationFailed(problem)
    if key_problem(settings.get("token_encryption_key")):
        raise AuthorizationFailed(FERNET_KEY_PROBLEM)
    codec = codec_for(settings)
    if not location:
        prepare_default_folder(env_file)
    store = open_token_store(
        store_location(settings, env_file), client_id=str(settings["client_id"]), codec=codec
    )
    with store.locked():  # can it take the tokens? (a read-only or full disk, no rights)
        store.prove_writable()
    if exposure := store.exposure():
        terminal.complain(f"warning: {exposure}")
    return store


def store_location(settings: dict[str, Any], env_file: Path) -> str:
    """`token_store`, else a token file in a folder next to .env: without a store the access
    token just issued would be lost, and Exact refuses a new one for 570 s."""
    default = env_file.parent / DEFAULT_TOKEN_FILE
    return str(settings.get("token_store") or default.resolve())


def prepare_default_folder(env_file: Path) -> None:
    """The default store's folder, ignored by git whatever the project's .gitignore says (as
    .pytest_cache and .ruff_cache do it)."""
    folder = (env_file.parent / DEFAULT_TOKEN_FILE).parent
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        ignore = folder / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# Written by tap-exactonline-auth: tokens are never committed.\n*\n")
    except OSError as exc:
        raise AuthorizationFailed(
            f"The token folder {folder} cannot be made ({exc.strerror}); set `token_store`."
        ) from None


def save_tokens(
    settings: dict[str, Any], body: dict[str, Any], store: TokenStore, env_file: Path
) -> str:
    """Write the new chain where the tap looks first; return what to tell the user."""
    tokens = TokenSet.from_token_response(
        body,
        now=time.time(),
        origin=fingerprint(str(body["refresh_token"])),
        replaces=fingerprint(str(settings["refresh_token"]))
        if settings.get("refresh_token")
        else "",
    )
    if tells_logins_apart(store):  # kept under the Exact login they are for
        api_base = f"{origin_of(settings)}/api/v1"
        tokens = replace(tokens, login=login_of(api_base, str(body["access_token"])))
    with store.locked():
        store.write(tokens)
    saved = f"Saved the new tokens to the token store ({store!r})."
    if not settings.get("token_store"):
        _write_env(env_file, f"{ENV_PREFIX}TOKEN_STORE", store_location(settings, env_file))
        saved += (
            f"\n{env_file} now sets {ENV_PREFIX}TOKEN_STORE to it (Meltano reads .env). Keep"
            " that file: it is where every rotated token goes. To keep it elsewhere:\n"
            "  meltano config set tap-exactonline token_store /var/lib/tap-exactonline/tokens.json"
        )
    return (
        f"{saved}\nThe tap continues from these tokens; a `refresh_token` setting you may still"
        " have is superseded.\nNext: meltano run tap-exactonline target-postgres"
    )


def _write_env(path: Path, name: str, value: str) -> None:
    lines = path.read_text().splitlines() if path.exists() else []
    lines = [line for line in lines if not line.startswith(f"{name}=")] + [f"{name}={value}"]
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(temp, path)


def _version() -> str:
    try:
        return importlib.metadata.version("tap-exactonline-rest")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout without installing
        return "(not installed)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tap-exactonline-auth",
        description="Authorize tap-exactonline for an Exact Online login (once).",
    )
    parser.add_argument("--config", action="append", default=[], help="tap config JSON file")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--listen", action="store_true", help="receive the callback on localhost (the default)"
    )
    mode.add_argument(
        "--paste", action="store_true", help="paste the callback URL (another machine's browser)"
    )
    parser.add_argument(
        "--redirect-uri", help=f"default: setting redirect_uri or {DEFAULT_REDIRECT_URI}"
    )
    parser.add_argument(
        "--env-file",
        default=".env",
        help=f"the .env Meltano reads (default: .env). Without a token_store setting the tokens "
        f"go to {DEFAULT_TOKEN_FILE} next to it, and this file names that store",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--timeout", type=float, default=LISTEN_SECONDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    terminal = Terminal()
    try:
        settings = load_settings(args.config)
        terminal.secrets = secret_values(settings)
        origin = origin_of(settings)
        store = open_store(settings, Path(args.env_file), terminal)
        redirect_uri = args.redirect_uri or settings.get("redirect_uri") or DEFAULT_REDIRECT_URI
        state = secrets.token_urlsafe(16)
        url = authorize_url(origin, str(settings["client_id"]), redirect_uri, state)
        host = urlsplit(redirect_uri).hostname
        listen = args.listen or (not args.paste and host in LOOPBACK_HOSTS)

        def finish(code: str) -> str:
            body = exchange_code(origin, settings, code, redirect_uri)
            return save_tokens(settings, body, store, Path(args.env_file))

        def show_url() -> None:
            terminal.show("Open this URL in a browser and log in to Exact Online:")
            terminal.show(url)

        if listen:

            def listening() -> None:
                show_url()
                terminal.show(f"Waiting for Exact to redirect to {redirect_uri} ...")

            outcome = listen_for_callback(
                redirect_uri, state, args.timeout, finish, terminal.complain, listening=listening
            )
        else:
            show_url()
            terminal.show("Then paste the whole URL your browser was sent to:")
            outcome = finish(code_from_callback(sys.stdin.readline(), state))
        terminal.show(outcome)
    except (AuthorizationFailed, TokenRefreshError) as failure:
        terminal.complain(str(failure))
        return 1
    return 0


def cli() -> None:
    raise SystemExit(main())
