//! Agent cards: `GET /.well-known/agent-card.json` (the server: one skill
//! per agent workflow, JSON-RPC at `{base_url}/a2a`) and
//! `GET /a2a/{workflow_id}/.well-known/agent-card.json` (one agent, JSON-RPC
//! at `{base_url}/a2a/{workflow_id}`). Both declare protocol 1.0 (and 0.3 on
//! the same URL: the dispatcher answers both dialects), streaming, and a
//! bearer scheme when the server requires API keys. Public: no key.
//!
//! A served local agent (`{workflow}.{agent}`) is described by its
//! workflow's `a2a:` section like any other: the card's description is its
//! instructions, its skill's description its tools and strategy. On the
//! server's card, a skill id that several agents share (two workflows'
//! agents of one name) is listed under each one's workflow id instead, so
//! the ids stay unique.

use std::collections::HashMap;

use ::a2a::{
    AgentCapabilities, AgentCard, AgentInterface, AgentSkill, HttpAuthSecurityScheme, SecurityScheme,
    TRANSPORT_PROTOCOL_JSONRPC,
};
use axum::Json;
use axum::extract::{Path, State};

use super::agents::{self, Agent};
use crate::server::{ApiError, AppState};

const MODES: [&str; 2] = ["text/plain", "application/json"];

/// The server's card: every agent as a skill.
pub async fn server_card(State(state): State<AppState>) -> Result<Json<AgentCard>, ApiError> {
    let agents = agents::all(&state.rt, state.config.a2a_all)?;
    let url = format!("{}/a2a", state.config.base_url());
    let description = if agents.is_empty() {
        "A JamJet runtime with no A2A agents registered yet".to_string()
    } else {
        format!(
            "A JamJet runtime serving {} agent(s); a new task names its skill in the message's metadata `skill` (or goes to the only agent)",
            agents.len()
        )
    };
    Ok(Json(card("jamjet", description, url, unique_skills(&agents), state.config.api_keys.has_keys())))
}

/// Every agent's skill; where agents share a skill id, each one's is its
/// workflow id.
fn unique_skills(agents: &[Agent]) -> Vec<AgentSkill> {
    let shared = |id: &str| agents.iter().filter(|a| a.spec.skill == id).count() > 1;
    agents
        .iter()
        .map(|a| {
            let mut s = skill(a);
            if shared(&s.id) {
                s.id = a.workflow.id.clone();
            }
            s
        })
        .collect()
}

/// One agent's card.
pub async fn agent_card(
    State(state): State<AppState>,
    Path(workflow_id): Path<String>,
) -> Result<Json<AgentCard>, ApiError> {
    let agent =
        agents::one(&state.rt, &workflow_id, state.config.a2a_all)?.ok_or_else(|| not_an_agent(&workflow_id))?;
    let url = format!("{}/a2a/{}", state.config.base_url(), workflow_id);
    let name = agent.spec.name.clone().unwrap_or_else(|| agent.workflow.id.clone());
    let mut card =
        card(&name, agent.spec.description.clone(), url, vec![skill(&agent)], state.config.api_keys.has_keys());
    card.version = agent.workflow.version.clone();
    Ok(Json(card))
}

/// 404 for a workflow that is not served as an agent.
pub fn not_an_agent(workflow_id: &str) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::NOT_FOUND,
        code: "unknown_agent",
        message: format!(
            "no A2A agent `{workflow_id}`: no registered workflow with that id has an `a2a:` section (or the server runs without --a2a), and it is no `WORKFLOW.AGENT` of a registered workflow's `agents:`"
        ),
        details: serde_json::Value::Null,
    }
}

fn skill(agent: &Agent) -> AgentSkill {
    AgentSkill {
        id: agent.spec.skill.clone(),
        name: agent.spec.name.clone().unwrap_or_else(|| agent.workflow.id.clone()),
        description: match &agent.spec.serves {
            Some(served) => served.skill_description.clone(),
            None => agent.spec.description.clone(),
        },
        tags: agent.spec.tags.clone(),
        examples: (!agent.spec.examples.is_empty()).then(|| agent.spec.examples.clone()),
        input_modes: None,
        output_modes: None,
        security_requirements: None,
    }
}

fn card(name: &str, description: String, url: String, skills: Vec<AgentSkill>, bearer: bool) -> AgentCard {
    let v1 = AgentInterface::new(url.clone(), TRANSPORT_PROTOCOL_JSONRPC);
    let mut v03 = AgentInterface::new(url, TRANSPORT_PROTOCOL_JSONRPC);
    v03.protocol_version = "0.3".into();
    let (security_schemes, security_requirements) = if bearer {
        let scheme = SecurityScheme::HttpAuth(HttpAuthSecurityScheme {
            scheme: "bearer".into(),
            description: Some("an API key of this server: Authorization: Bearer <key>".into()),
            bearer_format: None,
        });
        (
            Some(HashMap::from([("bearer".to_string(), scheme)])),
            Some(vec![HashMap::from([("bearer".to_string(), vec![])])]),
        )
    } else {
        (None, None)
    };
    AgentCard {
        name: name.to_string(),
        description,
        version: env!("CARGO_PKG_VERSION").to_string(),
        supported_interfaces: vec![v1, v03],
        capabilities: AgentCapabilities {
            streaming: Some(true),
            push_notifications: Some(false),
            extensions: None,
            extended_agent_card: Some(false),
        },
        default_input_modes: MODES.iter().map(|m| m.to_string()).collect(),
        default_output_modes: MODES.iter().map(|m| m.to_string()).collect(),
        skills,
        provider: None,
        documentation_url: None,
        icon_url: None,
        security_schemes,
        security_requirements,
        signatures: None,
    }
}
