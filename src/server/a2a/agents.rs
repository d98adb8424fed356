//! Which registered workflows are A2A agents: those whose IR carries an
//! `a2a:` section, or every one when the server runs with `--a2a`
//! (`Config::a2a_all`; an unmarked workflow then gets skill = its id). The
//! version served is the one registered last.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::ir::{A2aAgent, Type, Workflow};
use crate::journal::Registration;
use crate::runtime::{self, Runtime};

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
    Ok(Some(Agent { registration, workflow, spec }))
}
