"""Models by name, as the ``jamjet`` command resolves them, and what a
durable model call inside a step answers.

``"gpt-4o-mini"`` (any ``gpt-*``, ``o1*``, ``o3*``, ``o4*``) is OpenAI's:
its key is read from ``OPENAI_API_KEY`` and it is sent to
``OPENAI_BASE_URL`` when that is set (an OpenAI-compatible server: vLLM,
Ollama, a loopback test server), else to OpenAI. ``"claude-*"`` is
Anthropic's, through ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL``.
The environment is read when the call is made, not when the name is
resolved, so the workflow's document holds no URL or key of yours."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import UnknownModel

__all__ = ["ModelReply"]

# provider -> (its base URL's variable, its default base URL, its key's variable)
_PROVIDERS = {
    "openai": ("OPENAI_BASE_URL", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    "anthropic": ("ANTHROPIC_BASE_URL", "https://api.anthropic.com", "ANTHROPIC_API_KEY"),
}


def _provider_of(name: str) -> str | None:
    if name.startswith("claude-"):
        return "anthropic"
    if name.startswith("gpt-") or name.startswith(("o1", "o3", "o4")):
        return "openai"
    return None


def _resolve_model(name: str) -> dict[str, Any]:
    """The model ``name`` as a ``models:`` entry of a workflow document
    (``provider``, ``model``, ``base_url``, ``api_key_env``), resolved as the
    CLI resolves a bare model id; the base URL is ``${OPENAI_BASE_URL:-...}``
    (``${ANTHROPIC_BASE_URL:-...}``), read by the runtime at each call.
    Raises :class:`jamjet.UnknownModel` for a name no provider is known for."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownModel(f"a model is named by a non-empty string, not {name!r}")
    provider = _provider_of(name)
    if provider is None:
        raise UnknownModel(
            f"unknown model `{name}`: not a model id a provider is known for (`claude-*` is Anthropic's; "
            f"`gpt-*`, `o1*`, `o3*`, `o4*` are OpenAI's); name one of those, or give the workflow a `models:` "
            f"entry for `{name}` (provider, model, base_url, api_key_env)"
        )
    url_var, default_url, key_var = _PROVIDERS[provider]
    return {
        "provider": provider,
        "model": name,
        "base_url": f"${{{url_var}:-{default_url}}}",
        "api_key_env": key_var,
    }


@dataclass
class ModelReply:
    """What a model answered to a durable call (``self.model(...)`` in a
    node of the decorator API)."""

    text: str
    """The reply's text."""
    model: str
    """The model as the call named it."""
    usage: dict[str, Any] = field(default_factory=dict)
    """``input_tokens``, ``output_tokens``, ``cost_usd`` of this call."""
    raw: Any = None
    """The reply as the provider sent it (JSON data)."""
