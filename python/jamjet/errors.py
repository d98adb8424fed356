"""The exceptions of jamjet: one base, :class:`JamjetError`, and a class
for each thing that can go wrong for you. Each carries the execution id
and the node (step) it is about, when there is one."""

from __future__ import annotations

from typing import Any

__all__ = [
    "JamjetError",
    "ValidationError",
    "StepFailed",
    "AgentFailed",
    "StoreLocked",
    "KeyConflict",
    "UnknownExecution",
    "NotWaiting",
    "UnknownModel",
    "ExecutionCancelled",
    "ClientError",
]


class JamjetError(Exception):
    """Anything jamjet refuses or that fails in it."""

    def __init__(
        self,
        message: str,
        *,
        execution_id: str | None = None,
        node: str | None = None,
        findings: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.execution_id = execution_id
        self.node = node
        self.findings = findings or []

    def __reduce__(self):  # keep the fields across pickling (multiprocessing)
        return (_rebuild, (type(self), self.message, self.execution_id, self.node, self.findings))


def _rebuild(cls, message, execution_id, node, findings):
    return cls(message, execution_id=execution_id, node=node, findings=findings)


class ValidationError(JamjetError):
    """Input that is refused before anything starts: a workflow that does
    not compile (``findings``: file, line, column, node, message each), a
    state that does not match the schema, a bad key or payload."""


class StepFailed(JamjetError):
    """An execution failed at a step (after the step's retries): ``node``
    is the step, the message carries what it raised, with the traceback."""


class AgentFailed(StepFailed):
    """An agent run failed (its budget, its output schema, a tool it
    could not call); ``node`` is the error class."""


class StoreLocked(JamjetError):
    """Another process holds the data dir (sled allows one at a time)."""


class KeyConflict(JamjetError):
    """A key already names an execution of another workflow or input."""


class UnknownExecution(JamjetError):
    """No execution with this id in the store."""


class NotWaiting(JamjetError):
    """A signal or decision for an execution that does not wait for it."""


class UnknownModel(ValidationError):
    """A model name jamjet cannot resolve to a provider."""


class ExecutionCancelled(JamjetError):
    """The execution was cancelled."""


class ClientError(JamjetError):
    """A server refused a client's request, or could not be reached:
    ``status`` is the HTTP status (None when no answer came), ``code`` the
    server's error code (``unauthorized``, ``unknown_execution``,
    ``key_conflict``...), ``details`` its details (JSON data)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.status = status
        self.code = code
        self.details = details

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # keep the HTTP fields across pickling too
        return (_rebuild_client, (self.message, self.status, self.code, self.details, self.execution_id, self.node))


def _rebuild_client(
    message: str, status: int | None, code: str | None, details: Any, execution_id: str | None, node: str | None
) -> ClientError:
    return ClientError(message, status=status, code=code, details=details, execution_id=execution_id, node=node)
