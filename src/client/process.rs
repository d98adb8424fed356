//! What a server process says about itself: which command holds a data
//! dir (`GET /holder`, on the data dir's socket only) and its metrics
//! (`GET /metrics`, the Prometheus text exposition).

use std::time::Duration;

use super::{Client, Error};
use crate::server::socket::Holder;

impl Client {
    /// `GET /holder` (on a data dir's socket only): which process holds
    /// it, within `limit`.
    pub async fn holder(&self, limit: Duration) -> Result<Holder, Error> {
        let req = self.http.get(self.url("/holder")).timeout(limit);
        let (_, v) = self.send("GET", "/holder", req).await?;
        self.decode("/holder", v)
    }

    /// `GET /metrics`: the Prometheus text exposition.
    pub async fn metrics(&self) -> Result<String, Error> {
        let (_, bytes) = self.fetch("GET", "/metrics", self.http.get(self.url("/metrics"))).await?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| Error::Protocol { url: self.url("/metrics"), reason: format!("not UTF-8: {e}") })
    }
}
