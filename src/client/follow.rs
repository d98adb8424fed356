//! One execution's live history over Server-Sent Events
//! (`GET /executions/{id}/events/stream`): [`Follow`] yields each durable
//! record once and in order, then the end. A broken connection is reopened
//! with `Last-Event-ID` (a few times, backing off); the SSE framing is
//! parsed here.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::Value;

use super::error::api_error;
use super::{Client, Error};
use crate::journal::{Record, Status};

/// How often a broken event stream is reopened (from the last event seen)
/// before giving up; the count restarts with every event received.
const STREAM_RECONNECTS: u32 = 5;
/// The pause before the first reconnect; doubled each time.
const STREAM_BACKOFF: Duration = Duration::from_millis(200);

/// What an event stream yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A durable record, in order, each once.
    Record(Record),
    /// The execution ended (`event: end`); nothing follows.
    End(Status),
    /// A piece of a streamed model reply (`event: token`): not journaled,
    /// not sent again after a reconnect.
    Token(crate::nodes::stream::Token),
}

/// One execution's live history over Server-Sent Events. A broken
/// connection is reopened with `Last-Event-ID` (a few times, backing off),
/// so every record arrives exactly once and in order.
pub struct Follow {
    client: Client,
    path: String,
    /// The highest sequence number delivered.
    last: u64,
    response: Option<reqwest::Response>,
    buf: Vec<u8>,
    pending: VecDeque<Item>,
    failures: u32,
    done: bool,
}

impl Follow {
    /// The stream at `path`, from after `after`; nothing is sent before
    /// the first [`Follow::next`].
    pub(super) fn new(client: Client, path: String, after: u64) -> Follow {
        Follow {
            client,
            path,
            last: after,
            response: None,
            buf: Vec::new(),
            pending: VecDeque::new(),
            failures: 0,
            done: false,
        }
    }

    /// The highest sequence number delivered so far.
    pub fn last_seq(&self) -> u64 {
        self.last
    }

    /// The next record (or the end); `None` once ended. Cancel-safe
    /// between chunks: dropping the future loses nothing already read.
    pub async fn next(&mut self) -> Result<Option<Item>, Error> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Ok(Some(item));
            }
            if self.done {
                return Ok(None);
            }
            let Some(resp) = self.response.as_mut() else {
                self.connect().await?;
                continue;
            };
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    self.buf.extend_from_slice(&bytes);
                    self.parse()?;
                }
                // The server closed the stream (or it broke) before the end: reopen.
                Ok(None) | Err(_) => {
                    self.response = None;
                    self.buf.clear();
                }
            }
        }
    }

    async fn connect(&mut self) -> Result<(), Error> {
        if self.failures > 0 {
            tokio::time::sleep(STREAM_BACKOFF * 2u32.pow(self.failures - 1)).await;
        }
        self.failures += 1;
        let url = self.client.url(&self.path);
        let req = self
            .client
            .http
            .get(format!("{url}?after={}", self.last))
            .header("accept", "text/event-stream")
            .header("last-event-id", self.last.to_string());
        match self.client.authorized(req).send().await {
            Ok(resp) if resp.status().is_success() => {
                self.response = Some(resp);
                Ok(())
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await.unwrap_or_default();
                let body = serde_json::from_slice(&bytes).ok();
                Err(self.client.held(api_error("GET", url, status, body, &bytes)))
            }
            Err(e) if self.failures > STREAM_RECONNECTS => Err(self.client.held(self.client.unreachable(&e).await)),
            Err(_) => Ok(()),
        }
    }

    /// Take every complete SSE event out of the buffer.
    fn parse(&mut self) -> Result<(), Error> {
        while let Some((end, skip)) = block_end(&self.buf) {
            let block: Vec<u8> = self.buf.drain(..end + skip).take(end).collect();
            let text = String::from_utf8_lossy(&block);
            let (mut name, mut data) = (String::from("message"), Vec::new());
            for line in text.lines() {
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => name = value.to_string(),
                    "data" => data.push(value),
                    _ => {}
                }
            }
            if data.is_empty() {
                continue;
            }
            let data = data.join("\n");
            let url = self.client.url(&self.path);
            if name == "end" {
                let v: Value = serde_json::from_str(&data)
                    .map_err(|e| Error::Protocol { url: url.clone(), reason: format!("end event: {e}") })?;
                let status = serde_json::from_value(v["status"].clone())
                    .map_err(|e| Error::Protocol { url, reason: format!("end event status: {e}") })?;
                self.pending.push_back(Item::End(status));
                self.done = true;
                self.response = None;
                return Ok(());
            }
            if name == "token" {
                let token = serde_json::from_str(&data)
                    .map_err(|e| Error::Protocol { url, reason: format!("event `token` is not a token: {e}") })?;
                self.pending.push_back(Item::Token(token));
                continue;
            }
            let record: Record = serde_json::from_str(&data)
                .map_err(|e| Error::Protocol { url, reason: format!("event `{name}` is not a record: {e}") })?;
            if record.seq > self.last {
                self.last = record.seq;
                self.failures = 0;
                self.pending.push_back(Item::Record(record));
            }
        }
        Ok(())
    }
}

/// Where the first SSE event block in `buf` ends, and the length of the
/// blank line after it.
fn block_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if buf[i..].starts_with(b"\r\n\r\n") {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_blocks_split_on_blank_lines_of_either_kind() {
        assert_eq!(block_end(b"id: 1\ndata: x\n\nrest"), Some((13, 2)));
        assert_eq!(block_end(b"id: 1\r\ndata: x\r\n\r\n"), Some((14, 4)));
        assert_eq!(block_end(b"id: 1\ndata: x\n"), None);
    }
}
