"""The shared fake GitHub for tests and benchmarks (see server.py and openapi.py)."""

from .openapi import OpenAPISpec, load_spec
from .server import FakeGitHub, FakeState, RecordedRequest, RepoState

__all__ = ["FakeGitHub", "FakeState", "OpenAPISpec", "RecordedRequest", "RepoState", "load_spec"]
