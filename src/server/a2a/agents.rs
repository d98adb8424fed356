//! Which registered workflows are A2A agents: those whose IR carries an
//! `a2a:` section, or every one when the server runs with `--a2a`
//! (`Config::a2a_all`; an unmarked workflow then gets skill = its id). The
//! version served is the one registered last.
//!
//! Local agents are served too: registering a workflow `W` with `agents:`
//! ([`register_served`]) registers, for each agent `A`, the workflow
//! [`crate::ir::served_agent`] makes (id `W.A`, an `a2a:` section of its
//! own), so the routes, tasks and cards below serve it as they serve any
//! agent workflow. One is served while the workflow registered last under
//! `W` still declares `A` in the same version ([`one`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::StatusCode;

use crate::ir::{A2aAgent, Type, Workflow};
use crate::journal::Registration;
use crate::runtime::{self, Runtime};
use crate::server::ApiError;

/// A workflow served as an agent.
#[derive(Debug, Clone)]
pub struct Agent {
    pub registration: Registration,
    pub workflow: Arc<Workflow>,
    /// The `a2a:` section, or the default one under `--a2a`.
    pub spec: A2aAgent,
}

impl Agent {
    /// The state key a message's text goes to: `input_key`, or the only
    /// `str` key of the state schema.
    pub fn text_key(&self) -> Result<String, String> {
        if let Some(key) = &self.spec.input_key {
            return Ok(key.clone());
        }
        let strs: Vec<&String> = self
            .workflow
            .state_schema
            .fields
            .iter()
            .filter(|(_, t)| matches!(t, Type::Str) || matches!(t, Type::Optional(inner) if **inner == Type::Str))
            .map(|(k, _)| k)
            .collect();
        match strs.as_slice() {
            [only] => Ok((*only).clone()),
            [] => Err(format!(
                "workflow `{}` has no `str` state key to put a message's text in: send a data part (an object of its input) instead",
                self.workflow.id
            )),
            many => Err(format!(
                "workflow `{}` has several `str` state keys ({}): set `a2a.input_key`, or send a data part (an object of its input)",
                self.workflow.id,
                many.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            )),
        }
    }
}

/// Every agent, by workflow id.
pub fn all(rt: &Runtime, a2a_all: bool) -> Result<Vec<Agent>, runtime::Error> {
    let ids: BTreeSet<String> = rt.workflows()?.into_iter().map(|r| r.workflow_id).collect();
    let mut out = Vec::new();
    for id in ids {
        if let Some(agent) = one(rt, &id, a2a_all)? {
            out.push(agent);
        }
    }
    Ok(out)
}

/// The agent for workflow `id`, if it is registered and served as one.
pub fn one(rt: &Runtime, id: &str, a2a_all: bool) -> Result<Option<Agent>, runtime::Error> {
    let (registration, workflow) = match rt.registered(id, None) {
        Ok(found) => found,
        Err(runtime::Error::UnknownWorkflow { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let spec = match (&workflow.a2a, a2a_all) {
        (Some(spec), _) => spec.clone(),
        (None, true) => A2aAgent {
            skill: workflow.id.clone(),
            description: format!("the JamJet workflow `{}` {}", workflow.id, workflow.version),
            name: None,
            tags: Vec::new(),
            examples: Vec::new(),
            input_key: None,
            output_key: None,
            serves: None,
        },
        (None, false) => return Ok(None),
    };
    if let Some(served) = &spec.serves
        && !still_declared(rt, &served.workflow, &served.agent, &workflow.version)?
    {
        return Ok(None);
    }
    Ok(Some(Agent { registration, workflow, spec }))
}

/// Whether the workflow registered last under `workflow_id` is `version`
/// and declares agent `agent`: a served agent is dropped with it.
fn still_declared(rt: &Runtime, workflow_id: &str, agent: &str, version: &str) -> Result<bool, runtime::Error> {
    match rt.registered(workflow_id, None) {
        Ok((_, wf)) => Ok(wf.version == version && wf.agents.contains_key(agent)),
        Err(runtime::Error::UnknownWorkflow { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Why a workflow's agents cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another workflow holds the id and version a served agent would.
    #[error(
        "agent `{agent}` of workflow `{workflow}` would be served as workflow `{id}` {version}, but another workflow is registered under that id and version: give one of them another id"
    )]
    Taken { id: String, version: String, workflow: String, agent: String },
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
}

impl From<ServeError> for ApiError {
    fn from(e: ServeError) -> ApiError {
        match e {
            ServeError::Taken { .. } => ApiError::new(StatusCode::CONFLICT, "workflow_conflict", e.to_string()),
            ServeError::Runtime(e) => e.into(),
        }
    }
}

/// The workflows serving `wf`'s agents ([`crate::ir::served_agents`]),
/// each checked as a run would check it, with its content hash; refused
/// when one would replace a workflow that does not serve an agent.
pub fn served(rt: &Runtime, wf: &Workflow) -> Result<Vec<(Workflow, String)>, ServeError> {
    let mut out = Vec::new();
    for made in crate::ir::served_agents(wf) {
        match rt.registered(&made.id, Some(&made.version)) {
            Ok((_, there)) if !crate::ir::is_served_agent(&there) => {
                let served = made.a2a.as_ref().and_then(|a| a.serves.as_ref());
                return Err(ServeError::Taken {
                    id: made.id.clone(),
                    version: made.version.clone(),
                    workflow: wf.id.clone(),
                    agent: served.map(|s| s.agent.clone()).unwrap_or_default(),
                });
            }
            Ok(_) | Err(runtime::Error::UnknownWorkflow { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let hash = rt.vet(&made)?;
        out.push((made, hash));
    }
    Ok(out)
}

/// Register what [`served`] made, each replacing the one its agent had
/// (the same content again writes nothing).
pub async fn register_served(rt: &Runtime, made: &[(Workflow, String)]) -> Result<(), runtime::Error> {
    for (wf, hash) in made {
        rt.register_vetted(wf, hash.clone(), true).await?;
    }
    Ok(())
}

/// What [`serve_registered`] did.
#[derive(Debug, Default)]
pub struct Serving {
    /// The ids of the workflows serving local agents.
    pub served: Vec<String>,
    /// Why some could not be served.
    pub skipped: Vec<String>,
}

/// Serve the agents of every workflow registered (the version registered
/// last of each id): what `jamjet dev` does at start, so a data dir's
/// workflows registered before are served too. One that cannot be is
/// skipped, with the reason.
pub async fn serve_registered(rt: &Runtime) -> Result<Serving, runtime::Error> {
    let ids: BTreeSet<String> = rt.workflows()?.into_iter().map(|r| r.workflow_id).collect();
    let mut out = Serving::default();
    for id in ids {
        let (_, wf) = rt.registered(&id, None)?;
        match served(rt, &wf) {
            Ok(made) => {
                register_served(rt, &made).await?;
                out.served.extend(made.into_iter().map(|(wf, _)| wf.id));
            }
            // A workflow that does not pass the checks is left out, not the server.
            Err(ServeError::Runtime(e @ runtime::Error::InvalidWorkflow { .. })) => out.skipped.push(e.to_string()),
            Err(ServeError::Runtime(e)) => return Err(e),
            Err(e) => out.skipped.push(e.to_string()),
        }
    }
    Ok(out)
}
