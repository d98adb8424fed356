//! Workflows over the API: register one from its YAML, list the
//! registrations, read one with its IR.

use super::transport::segment;
use super::{Client, Error};
use crate::ir::Workflow;
use crate::journal::Registration;
use crate::server::wire::{RegisteredWorkflow, Workflows};

impl Client {
    /// `POST /workflows` with a YAML body (`?replace=true` replaces other
    /// content under the same id and version). The flag says whether it
    /// was new (201) or already there (200).
    pub async fn register_yaml(&self, yaml: &str, replace: bool) -> Result<(Registration, bool), Error> {
        let path = if replace { "/workflows?replace=true" } else { "/workflows" };
        let req = self.http.post(self.url(path)).header("content-type", "application/yaml").body(yaml.to_string());
        let (status, v) = self.send("POST", path, req).await?;
        Ok((self.decode(path, v)?, status == 201))
    }

    /// `GET /workflows`: every registration.
    pub async fn workflows(&self) -> Result<Vec<Registration>, Error> {
        let got: Workflows = self.get("/workflows").await?;
        Ok(got.workflows)
    }

    /// `GET /workflows/{id}?version=`: the registration and the IR.
    pub async fn workflow(&self, id: &str, version: Option<&str>) -> Result<(Registration, Workflow), Error> {
        let mut path = format!("/workflows/{}", segment(id));
        if let Some(v) = version {
            path.push_str(&format!("?version={}", segment(v)));
        }
        let got: RegisteredWorkflow = self.get(&path).await?;
        Ok((got.registration, got.workflow))
    }
}
