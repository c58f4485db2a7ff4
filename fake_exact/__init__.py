"""A fake Exact Online REST API for tests and benchmarks: `FakeExact(...).start()`."""

from fake_exact.server import FakeExact

__all__ = ["FakeExact"]
