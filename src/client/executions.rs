//! Executions over the API: submit (a registered workflow, or its IR
//! inline), read one, list them (a page, or every page), read their
//! events (the live stream is [`super::follow`]), signal, approve,
//! cancel, publish an event by key (`POST /events`), and ask the server
//! to resume what it does not carry yet.

use serde_json::{Value, json};

use super::transport::segment;
use super::{Client, Error, Follow};
use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{Record, Status};
use crate::server::wire::{
    ApproveRequest, Approved, CancelRequest, EventRequest, Events, Execution, ExecutionWorkflow, Moved, Page,
    Published, ResumeReply, SignalRequest, SubmitRequest, Submitted, Summary,
};

/// Filters of `GET /executions`.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub status: Option<Status>,
    pub workflow: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl Client {
    /// `POST /executions`.
    pub async fn submit(
        &self,
        workflow_id: &str,
        version: Option<&str>,
        input: &Value,
        idempotency_key: Option<&str>,
        session: Option<&str>,
    ) -> Result<Submitted, Error> {
        let body = SubmitRequest {
            workflow_id: Some(workflow_id.to_string()),
            version: version.map(str::to_string),
            input: Some(input.clone()),
            idempotency_key: idempotency_key.map(str::to_string),
            session: session.map(str::to_string),
            ..SubmitRequest::default()
        };
        self.post("/executions", &body).await
    }

    /// `POST /executions` with the workflow's IR inline: run it as it is,
    /// without registering it (what `jamjet run FILE` does locally).
    pub async fn submit_inline(
        &self,
        workflow: &Workflow,
        input: &Value,
        idempotency_key: Option<&str>,
        session: Option<&str>,
    ) -> Result<Submitted, Error> {
        let ir = serde_json::to_value(workflow).map_err(|e| Error::Protocol {
            url: self.url("/executions"),
            reason: format!("the workflow does not serialize: {e}"),
        })?;
        let body = SubmitRequest {
            workflow: Some(ir),
            input: Some(input.clone()),
            idempotency_key: idempotency_key.map(str::to_string),
            session: session.map(str::to_string),
            ..SubmitRequest::default()
        };
        self.post("/executions", &body).await
    }

    /// `GET /sessions`.
    pub async fn sessions(&self) -> Result<Vec<crate::runtime::SessionInfo>, Error> {
        let list: crate::server::wire::SessionList = self.get("/sessions").await?;
        Ok(list.sessions)
    }

    /// `GET /sessions/{id}` (the id percent-encoded).
    pub async fn session(&self, id: &str) -> Result<crate::runtime::SessionDetail, Error> {
        let mut url = reqwest::Url::parse("http://session.invalid/sessions").expect("a valid URL");
        url.path_segments_mut().expect("a base URL").push(id);
        self.get(url.path()).await
    }

    /// `GET /executions/{id}`.
    pub async fn execution(&self, id: ExecutionId) -> Result<Execution, Error> {
        self.get(&format!("/executions/{id}")).await
    }

    /// `GET /executions/{id}/workflow`: the IR an execution runs and its hash.
    pub async fn workflow_of(&self, id: ExecutionId) -> Result<(String, Workflow), Error> {
        let got: ExecutionWorkflow = self.get(&format!("/executions/{id}/workflow")).await?;
        Ok((got.hash, got.workflow))
    }

    /// One page of `GET /executions`.
    pub async fn list(&self, q: &ListQuery) -> Result<Page, Error> {
        let mut params = Vec::new();
        if let Some(s) = q.status {
            params.push(format!("status={s}"));
        }
        if let Some(w) = &q.workflow {
            params.push(format!("workflow={}", segment(w)));
        }
        if let Some(l) = q.limit {
            params.push(format!("limit={l}"));
        }
        if let Some(c) = &q.cursor {
            params.push(format!("cursor={}", segment(c)));
        }
        let path =
            if params.is_empty() { "/executions".to_string() } else { format!("/executions?{}", params.join("&")) };
        self.get(&path).await
    }

    /// Every page of `GET /executions`, oldest first.
    pub async fn list_all(&self, status: Option<Status>) -> Result<Vec<Summary>, Error> {
        let mut out = Vec::new();
        let mut q = ListQuery { status, limit: Some(1000), ..ListQuery::default() };
        loop {
            let page = self.list(&q).await?;
            let got = page.executions.len();
            out.extend(page.executions);
            match page.next_cursor {
                // A cursor with an empty page would loop forever: stop there.
                Some(c) if got > 0 => q.cursor = Some(c),
                _ => return Ok(out),
            }
        }
    }

    /// `GET /executions/{id}/events?after=SEQ`.
    pub async fn events(&self, id: ExecutionId, after: u64) -> Result<Vec<Record>, Error> {
        let got: Events = self.get(&format!("/executions/{id}/events?after={after}")).await?;
        Ok(got.events)
    }

    /// Follow `GET /executions/{id}/events/stream` from after `after`.
    pub fn follow(&self, id: ExecutionId, after: u64) -> Follow {
        Follow::new(self.clone(), format!("/executions/{id}/events/stream"), after)
    }

    /// `POST /executions/{id}/signal`.
    pub async fn signal(&self, id: ExecutionId, key: &str, payload: &Value) -> Result<Moved, Error> {
        let body = SignalRequest { key: key.to_string(), payload: payload.clone() };
        self.post(&format!("/executions/{id}/signal"), &body).await
    }

    /// `POST /events`: publish an event by key (`keep`: `24h`, `90s`...).
    pub async fn publish(&self, key: &str, payload: &Value, keep: Option<&str>) -> Result<Published, Error> {
        let body = EventRequest { key: key.to_string(), payload: payload.clone(), keep: keep.map(str::to_string) };
        self.post("/events", &body).await
    }

    /// `POST /executions/{id}/approve`.
    pub async fn approve(
        &self,
        id: ExecutionId,
        approved: bool,
        node: Option<&str>,
        by: Option<&str>,
        comment: Option<&str>,
    ) -> Result<Approved, Error> {
        let body = ApproveRequest {
            approved,
            by: by.map(str::to_string),
            comment: comment.map(str::to_string),
            node: node.map(str::to_string),
            call: None,
        };
        self.post(&format!("/executions/{id}/approve"), &body).await
    }

    /// `POST /executions/{id}/approve` with `call`: decide one pending tool call.
    pub async fn approve_call(
        &self,
        id: ExecutionId,
        call: &str,
        approved: bool,
        by: Option<&str>,
        comment: Option<&str>,
    ) -> Result<Approved, Error> {
        let body = ApproveRequest {
            approved,
            by: by.map(str::to_string),
            comment: comment.map(str::to_string),
            node: None,
            call: Some(call.to_string()),
        };
        self.post(&format!("/executions/{id}/approve"), &body).await
    }

    /// `POST /executions/{id}/cancel`.
    pub async fn cancel(&self, id: ExecutionId, reason: &str) -> Result<Moved, Error> {
        self.post(&format!("/executions/{id}/cancel"), &CancelRequest { reason: Some(reason.to_string()) }).await
    }

    /// `POST /resume`: the executions the server rehydrated, and those it
    /// skipped with why.
    pub async fn resume(&self) -> Result<(Vec<ExecutionId>, Vec<(ExecutionId, String)>), Error> {
        let got: ResumeReply = self.post("/resume", &json!({})).await?;
        Ok((got.resumed, got.skipped.into_iter().map(|s| (s.id, s.reason)).collect()))
    }

    /// `POST /prune`: remove the ended executions `request` chooses; what was freed.
    pub async fn prune(
        &self,
        request: &crate::server::wire::PruneRequest,
    ) -> Result<crate::runtime::PruneReport, Error> {
        self.post("/prune", request).await
    }

    /// `POST /executions/{id}/fork`: start a fork of `id`; the fork's id.
    pub async fn fork(&self, id: ExecutionId, spec: &crate::runtime::ForkSpec) -> Result<ExecutionId, Error> {
        let started: crate::server::wire::Submitted = self.post(&format!("/executions/{id}/fork"), spec).await?;
        Ok(started.id)
    }

    /// `GET /executions/{id}/replay`: where the journal and this build's state machine disagree.
    pub async fn replay(&self, id: ExecutionId) -> Result<crate::runtime::ReplayReport, Error> {
        self.get(&format!("/executions/{id}/replay")).await
    }
}
