"""Fixtures: a temporary store, a loopback model server, and the
environment a test's models resolve through."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jamjet.testing import ModelServer

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A fresh data dir for a durable runtime."""
    return str(tmp_path / ".jamjet")


@pytest.fixture
def model_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelServer]:
    """A loopback OpenAI- and Anthropic-compatible server; OPENAI_BASE_URL,
    ANTHROPIC_BASE_URL and both keys point at it for the test."""
    with ModelServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
        yield server


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a Python child process (the package importable)."""
    env = dict(os.environ)
    env.update(extra)
    return env
