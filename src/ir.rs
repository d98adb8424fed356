//! Workflow IR, the YAML compiler, validation, templates and conditions.
//!
//! Both YAML forms (a `workflow:` block, or `id:`/`version:`/`nodes:` at
//! the top level) compile to one [`Workflow`]. Compilation reports every
//! finding at once, each with file, line and column ([`Diagnostic`]). This
//! module knows nothing of actors, nodes' run-time behaviour or storage.

mod agent;
mod agents;
mod check;
mod compile;
mod diagnostic;
mod env;
mod eval;
mod inputs;
mod limits;
mod mcp;
mod model;
mod schema;
mod served;
mod template;
mod trajectory;
mod workflow;

pub use agent::{AgentNode, DEFAULT_AGENT_TIMEOUT_MS};
pub use agents::{AgentDef, AgentTool, Budget, DEFAULT_MAX_ITERATIONS, Policy, Strategy, ToolApproval};
pub use check::{Finding, check};
pub use compile::{Includes, Options, compile_file, compile_file_with, compile_str, compile_str_with};
pub use diagnostic::{Diagnostic, Diagnostics};
pub use env::{EnvRefError, env_refs, expand_env, expand_process_env, has_env_refs};
pub use eval::{EvalNode, EvalOnFail, Scorer, ScorerKind};
pub use inputs::{Required, prepare_input, required_inputs};
pub use limits::{BadLimit, Limit, Limits, entry_size, json_size, message as limits_message, show_bytes, thousands};
pub use mcp::{McpServer, PathRole, ToolNode};
pub use model::{
    DEFAULT_MAX_TOOL_ROUNDS, MessageTemplate, ModelConfig, ModelNode, ModelTools, Price, Provider, UnknownModel,
    built_in_price, compile_schema, resolve_model,
};
pub use schema::{SchemaError, StateSchema, Type, json_kind};
pub use served::{
    ANSWER_KEY, DESCRIPTION_CHARS, MESSAGE_KEY, ServedAgent, is_served_agent, served_agent, served_agent_id,
    served_agents,
};
pub use template::{
    Names, PathStep, TemplateError, Templates, check_template, is_filter, is_template, is_test, known_filters,
    known_tests, names, referenced_state_keys, referenced_variables, referenced_variables_with, single_expression,
};
pub use trajectory::{ArgMatcher, ExpectedCall, MATCHER_KEYS, TrajectoryMatch, parse_trajectory, regex_problem};
pub use workflow::{
    A2aAgent, ApprovalNode, Backoff, BranchNode, Condition, Edge, EdgeKind, FunctionNode, HttpNode, Merge, Node,
    NodeKind, OnError, ParallelNode, RetryPolicy, SetNode, Span, SubWorkflowNode, WaitNode, Workflow,
};
