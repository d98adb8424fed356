"""Models by name, as the ``jamjet`` command resolves them, and explicit
:class:`Model` entries.

A bare model id names its provider: ``claude-*`` is Anthropic's; ``gpt-*``,
``o1*``, ``o3*``, ``o4*`` are OpenAI's (``"openai/llama3.2"`` names the
provider of any other id). Such a name becomes an entry of the workflow's
``models:`` whose base url is read from the environment when the model is
called: ``OPENAI_BASE_URL`` (else ``https://api.openai.com/v1``) or
``ANTHROPIC_BASE_URL`` (else ``https://api.anthropic.com``), and whose key
is read from ``OPENAI_API_KEY`` or ``ANTHROPIC_API_KEY``. Neither the url
nor the key is written into the workflow (its content hash, the journal):
only the variables' names.

>>> Model.named("gpt-4o-mini", where="agent `a`").entry()["base_url"]
'${OPENAI_BASE_URL:-https://api.openai.com/v1}'
>>> Model(provider="openai", model="llama3.2", base_url="http://127.0.0.1:11434/v1").entry()
{'provider': 'openai', 'model': 'llama3.2', 'base_url': 'http://127.0.0.1:11434/v1'}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import UnknownModel, ValidationError

__all__ = ["Model", "ModelReply", "PROVIDERS", "provider_for"]

PROVIDERS = ("openai", "anthropic")
"""The providers' wire formats: OpenAI-compatible chat completions (OpenAI,
Ollama, vLLM, llama.cpp, ...) and Anthropic messages."""

_BASE_URL = {
    "openai": "${OPENAI_BASE_URL:-https://api.openai.com/v1}",
    "anthropic": "${ANTHROPIC_BASE_URL:-https://api.anthropic.com}",
}
_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


class _Unset:
    def __repr__(self) -> str:
        return "<provider default>"


_UNSET: Any = _Unset()


def provider_for(model_id: str) -> str | None:
    """The provider a bare model id belongs to, or ``None``."""
    if model_id.startswith("claude-"):
        return "anthropic"
    if model_id.startswith("gpt-") or model_id.startswith(("o1", "o3", "o4")):
        return "openai"
    return None


class Model:
    """One model: its provider, its id, where to send and where the key is.

    ``base_url`` defaults to the provider's (read from ``OPENAI_BASE_URL``
    / ``ANTHROPIC_BASE_URL`` when set); ``api_key_env`` names the
    environment variable the key is read from when the model is called:
    the provider's (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``) unless you
    give a ``base_url``, where it defaults to no key (a local server); give
    it to send one. ``base_url`` may hold ``${VAR}`` references, resolved
    at call time. ``price`` is USD per million input and output tokens
    (the built-in table knows the common models). ``name`` is the entry's
    name in the workflow's ``models:`` (by default ``provider/model``)."""

    __slots__ = ("provider", "model", "base_url", "api_key_env", "temperature", "max_tokens", "price", "name")

    def __init__(
        self,
        model: str | None = None,
        *,
        provider: str | None = None,
        base_url: str | None = None,
        api_key_env: str | None = _UNSET,
        temperature: float | None = None,
        max_tokens: int | None = None,
        price: tuple[float, float] | None = None,
        name: str | None = None,
    ) -> None:
        if not model or not isinstance(model, str):
            raise ValidationError(f"jamjet.Model needs model= (the provider's model id), not {model!r}")
        if provider is None:
            provider = provider_for(model)
            if provider is None:
                raise UnknownModel(
                    f"jamjet.Model(model={model!r}) needs provider= ({' or '.join(PROVIDERS)}): `{model}` is not a "
                    f"model id a provider is known for (`claude-*`, `gpt-*`, `o1*`, `o3*`, `o4*`)"
                )
        if provider not in PROVIDERS:
            raise ValidationError(
                f"jamjet.Model(model={model!r}): unknown provider `{provider}` (expected one of: {', '.join(PROVIDERS)}; "
                "an OpenAI-compatible server such as Ollama or vLLM is `openai` with its base_url)"
            )
        if base_url is not None and not base_url.startswith(("http://", "https://", "${")):
            raise ValidationError(
                f"jamjet.Model(model={model!r}): base_url must start with http:// or https:// (or be a ${{VAR}}), "
                f"not {base_url!r}"
            )
        if price is not None and len(price) != 2:
            raise ValidationError(f"jamjet.Model(model={model!r}): price is (input_per_mtok, output_per_mtok)")
        self.provider = provider
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.price = price
        self.name = name

    @classmethod
    def named(cls, spec: str | Model, *, where: str) -> Model:
        """Resolve a model as an agent or a step names it: a :class:`Model`
        as it is; ``"provider/model"``; or a bare model id whose provider
        is known. Anything else is :class:`jamjet.UnknownModel` naming
        ``where`` (the agent or step) and the model."""
        if isinstance(spec, Model):
            return spec
        if not isinstance(spec, str) or not spec:
            raise ValidationError(f"{where}: a model is a name (\"gpt-4o-mini\") or a jamjet.Model, not {spec!r}")
        provider, _, rest = spec.partition("/")
        if rest and provider in PROVIDERS:
            return cls(rest, provider=provider, name=spec)
        if provider_for(spec) is not None:
            return cls(spec, name=spec)
        raise UnknownModel(
            f"{where}: unknown model `{spec}`: it is not a model id a provider is known for (`claude-*`, `gpt-*`, "
            f"`o1*`, `o3*`, `o4*`); name its provider (\"openai/{spec}\", \"anthropic/{spec}\") or give "
            f"jamjet.Model(provider=..., model={spec!r}, base_url=...)"
        )

    @property
    def key(self) -> str:
        """The entry's name in ``models:``."""
        return self.name or f"{self.provider}/{self.model}"

    def entry(self) -> dict[str, Any]:
        """The ``models:`` entry, as YAML writes it."""
        out: dict[str, Any] = {"provider": self.provider, "model": self.model}
        if self.base_url is None:
            out["base_url"] = _BASE_URL[self.provider]
            key_env = _KEY_ENV[self.provider] if self.api_key_env is _UNSET else self.api_key_env
        else:
            out["base_url"] = self.base_url
            key_env = None if self.api_key_env is _UNSET else self.api_key_env
        if key_env is not None:
            out["api_key_env"] = key_env
        if self.temperature is not None:
            out["temperature"] = self.temperature
        if self.max_tokens is not None:
            out["max_tokens"] = self.max_tokens
        if self.price is not None:
            out["price"] = {"input_per_mtok": self.price[0], "output_per_mtok": self.price[1]}
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and (self.key, self.entry()) == (other.key, other.entry())

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        extra = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"jamjet.Model({self.model!r}, provider={self.provider!r}{extra})"


def _resolve_model(spec: str | Model) -> dict[str, Any]:
    """The model ``spec`` (a name, as :meth:`Model.named` reads it, or a
    :class:`Model`) as a ``models:`` entry of a workflow document. Raises
    :class:`jamjet.UnknownModel` for a name no provider is known for."""
    where = f"model `{spec}`" if isinstance(spec, str) else "model"
    return Model.named(spec, where=where).entry()


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
