"""JamJet: a durable runtime for AI agents, in your Python process.

The engine is JamJet's Rust runtime, embedded through PyO3: steps are
journaled (in memory, or on sled with ``store=``), so a killed process
resumes each execution at its first incomplete step.

>>> from pydantic import BaseModel
>>> from jamjet import Workflow
>>> class State(BaseModel):
...     question: str
...     answer: str = ""
>>> wf = Workflow("echo", state=State)
>>> @wf.step
... def answer(state: State) -> State:
...     return state.model_copy(update={"answer": state.question.upper()})
>>> wf.run_sync(State(question="hi")).state.answer
'HI'
"""

from __future__ import annotations

from . import errors
from ._native import __version__ as _native_version
from ._runtime import Runtime
from .agent import Agent, AgentResult, ToolCall
from ._steps import current_step, step_run, step_run_sync
from .client import AsyncClient, Client
from .errors import (
    AgentFailed,
    ClientError,
    ExecutionCancelled,
    JamjetError,
    KeyConflict,
    NotWaiting,
    StepFailed,
    StoreLocked,
    UnknownExecution,
    UnknownModel,
    ValidationError,
)
from .models import Model, ModelReply
from .tools import MCPServer, MCPTool, Tool, tool
from .workflow import RunResult, StreamChunk, Waiting, Workflow
from ._dict_state import State
from .decorators import node, workflow, workflow_of
from .loading import YamlWorkflow, load, run_child, run_child_sync

__version__ = _native_version

__all__ = [
    "Runtime",
    "Workflow",
    "RunResult",
    "StreamChunk",
    "Waiting",
    "Agent",
    "AgentResult",
    "ToolCall",
    "tool",
    "Tool",
    "Model",
    "MCPServer",
    "MCPTool",
    "workflow",
    "node",
    "State",
    "workflow_of",
    "ModelReply",
    "load",
    "YamlWorkflow",
    "run_child",
    "run_child_sync",
    "step_run",
    "step_run_sync",
    "current_step",
    "Client",
    "AsyncClient",
    "errors",
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
    "__version__",
]
