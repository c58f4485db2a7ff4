"""What `--help` and `--version` say is what the commands do."""

from __future__ import annotations

import subprocess

from tests.tap_runner import AUTH, TAP


def output_of(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return " ".join((done.stdout + done.stderr).split())  # the help's line breaks undone


def test_the_taps_help_describes_its_connection_test():
    help_text = output_of(TAP, "--help")
    assert "sync a single record" not in help_text  # the SDK's --test; ours reads no data
    assert "--test TEXT Check the connection" in help_text


def test_the_auth_commands_help_says_its_defaults_and_it_has_a_version():
    help_text = output_of(AUTH, "--help")
    assert "receive the callback on localhost (the default)" in help_text
    assert "the tokens go to .exactonline/tokens.json next to it" in help_text
    assert "write the refresh token" not in help_text  # into .env: it never did
    assert output_of(AUTH, "--version").startswith("tap-exactonline-auth 0.")
