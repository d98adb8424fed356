//! OpenTelemetry traces over OTLP/HTTP (`--otlp-endpoint`, or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`): every execution a trace, every node
//! visit and journaled call a span (see [`spans`] for which, and their
//! attributes).
//!
//! Spans are made from the journal, not from the actors: the feed hands
//! this exporter each append once it is durable ([`Exporter::notice`], a
//! non-blocking send), and one thread of its own turns records into spans
//! and posts them in batches with the OpenTelemetry project's OTLP exporter
//! (protobuf over HTTP). So a trace shows exactly what was recorded, costs
//! the executions nothing but a queue push, and a slow or absent collector
//! never slows an execution: past [`QUEUE`] unsent appends, notices are
//! dropped (and counted in a warning), never waited for.
//!
//! Ids are derived, not drawn ([`crate::nodes::trace`]): the trace id is
//! the root execution's id, so an execution resumed by another process, or
//! after a `kill -9`, goes on in the same trace. Spans a process had not
//! posted when it was killed are lost with it (at most [`BATCH`] spans or
//! the last `flush_every`).

pub mod spans;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};

use crate::id::ExecutionId;
use crate::journal::{Event, Journal};
use spans::{Span, Tracker};

/// Appends waiting to be turned into spans, at most.
pub const QUEUE: usize = 65_536;
/// Spans posted in one request, at most.
pub const BATCH: usize = 512;
/// How long a span may wait to be posted, by default.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often a busy exporter takes what queued (see `Worker::run`).
const LOOK_EVERY: Duration = Duration::from_millis(20);
/// How long one post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how traces go.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// The collector's base URL (`http://127.0.0.1:4318`): spans are posted
    /// to `{endpoint}/v1/traces`, as the OpenTelemetry variable's value is
    /// read. A URL that already ends in `/v1/traces` is used as it is.
    pub endpoint: String,
    /// `service.name` of the resource (default `jamjet`).
    pub service_name: String,
    /// The longest a span waits before it is posted.
    pub flush_every: Duration,
}

impl OtlpConfig {
    pub fn new(endpoint: impl Into<String>) -> Self {
        OtlpConfig { endpoint: endpoint.into(), service_name: "jamjet".to_string(), flush_every: FLUSH_EVERY }
    }

    /// Where spans are posted, or what is wrong with the endpoint.
    pub fn traces_url(&self) -> Result<String, String> {
        let base = self.endpoint.trim();
        if !base.contains("://") {
            return Err(format!("the OTLP endpoint `{base}` has no scheme: write it as http://{base}"));
        }
        let url = if base.trim_end_matches('/').ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{}/v1/traces", base.trim_end_matches('/'))
        };
        match reqwest::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(url),
            Ok(u) => {
                Err(format!("the OTLP endpoint `{base}` is not an http(s) URL with a host (scheme `{}`)", u.scheme()))
            }
            Err(e) => Err(format!("the OTLP endpoint `{base}` is not a URL: {e}")),
        }
    }
}

enum Msg {
    Notice { id: ExecutionId, first_seq: u64, at_ms: u64, events: Vec<Event> },
    Finish(tokio::sync::oneshot::Sender<()>),
}

/// The exporter: a queue and the thread that empties it.
pub struct Exporter {
    tx: SyncSender<Msg>,
    counts: Arc<Counts>,
}

/// What the exporter did (for `/metrics`).
#[derive(Default)]
struct Counts {
    exported: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// What the exporter did since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtlpCounts {
    /// Spans the collector accepted.
    pub spans_exported: u64,
    /// Spans of posts that failed (dropped).
    pub spans_failed: u64,
    /// Durable appends left out of traces because the queue was full.
    pub appends_dropped: u64,
}

impl Exporter {
    /// Start exporting to `config`'s endpoint; `journal` is read for what
    /// came before an execution's first append this process saw.
    pub fn start(config: &OtlpConfig, journal: Arc<dyn Journal>) -> Result<Arc<Exporter>, String> {
        let url = config.traces_url()?;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url.clone())
            .with_timeout(POST_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot set up the OTLP exporter for {url}: {e}"))?;
        let resource = Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        exporter.set_resource(&resource);
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let counts = Arc::new(Counts::default());
        let worker = Worker {
            counts: counts.clone(),
            rx,
            journal: Some(journal),
            exporter,
            url,
            flush_every: config.flush_every,
            tracker: Tracker::default(),
            buffer: Vec::new(),
            oldest: None,
            scope: InstrumentationScope::builder("jamjet").with_version(env!("CARGO_PKG_VERSION")).build(),
            failed_at: None,
        };
        std::thread::Builder::new()
            .name("jamjet-otlp".into())
            .spawn(move || worker.run())
            .map_err(|e| format!("cannot start the OTLP exporter's thread: {e}"))?;
        Ok(Arc::new(Exporter { tx, counts }))
    }

    /// `events` of `id`, from `first_seq`, appended at `at_ms`, are durable.
    pub(crate) fn notice(&self, id: ExecutionId, first_seq: u64, at_ms: u64, events: &[Event]) {
        let msg = Msg::Notice { id, first_seq, at_ms, events: events.to_vec() };
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self.counts.dropped.fetch_add(1, Ordering::Relaxed).is_multiple_of(10_000) {
                    tracing::warn!(
                        dropped = self.counts.dropped.load(Ordering::Relaxed),
                        "OTLP export is behind: appends were left out of traces"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// What it did so far.
    pub fn counts(&self) -> OtlpCounts {
        OtlpCounts {
            spans_exported: self.counts.exported.load(Ordering::Relaxed),
            spans_failed: self.counts.failed.load(Ordering::Relaxed),
            appends_dropped: self.counts.dropped.load(Ordering::Relaxed),
        }
    }

    /// Post what is queued and stop (waits up to 15 seconds).
    pub async fn finish(&self) {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let tx = self.tx.clone();
        // The queue may be full: wait for room off the async threads.
        let sent = tokio::task::spawn_blocking(move || tx.send(Msg::Finish(done_tx)).is_ok()).await.unwrap_or(false);
        if sent {
            let _ = tokio::time::timeout(Duration::from_secs(15), done_rx).await;
        }
    }
}

struct Worker {
    counts: Arc<Counts>,
    rx: Receiver<Msg>,
    /// Let go of before `finish` returns: the store may be opened again.
    journal: Option<Arc<dyn Journal>>,
    exporter: opentelemetry_otlp::SpanExporter,
    url: String,
    flush_every: Duration,
    tracker: Tracker,
    buffer: Vec<Span>,
    /// When the oldest buffered span was made.
    oldest: Option<Instant>,
    scope: InstrumentationScope,
    /// When a post last failed (one warning a minute at most).
    failed_at: Option<Instant>,
}

impl Worker {
    fn run(mut self) {
        loop {
            // Busy, it looks every LOOK_EVERY and takes all that queued
            // meanwhile; idle, it blocks until the next notice. (A receiver
            // blocked in `recv` makes every send wake it: a futex call and
            // a context switch per append, a quarter of a busy runtime's
            // throughput.)
            let mut took = 0usize;
            loop {
                let msg = match self.rx.try_recv() {
                    Ok(msg) => msg,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return self.post(),
                };
                took += 1;
                if !self.handle(msg) {
                    return;
                }
                if self.buffer.len() >= BATCH {
                    self.post();
                }
            }
            if self.oldest.is_some_and(|t| t.elapsed() >= self.flush_every) {
                self.post();
            }
            if took > 0 {
                std::thread::sleep(LOOK_EVERY);
                continue;
            }
            let wait = match self.oldest {
                Some(t) => self.flush_every.saturating_sub(t.elapsed()),
                None => Duration::from_secs(3600),
            };
            match self.rx.recv_timeout(wait) {
                Ok(msg) => {
                    if !self.handle(msg) {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return self.post(),
            }
        }
    }

    /// Take one message; `false`: stop (it was `Finish`, now done).
    fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Notice { id, first_seq, at_ms, events } => {
                self.take(id, first_seq, at_ms, &events);
                true
            }
            Msg::Finish(done) => {
                self.post();
                let _ = self.exporter.shutdown();
                self.journal = None;
                let _ = done.send(());
                false
            }
        }
    }

    fn take(&mut self, id: ExecutionId, first_seq: u64, at_ms: u64, events: &[Event]) {
        let Some(journal) = self.journal.clone() else { return };
        let root_of = |p: ExecutionId| crate::actors::trace_root(journal.as_ref(), p);
        if !self.tracker.knows(id) && first_seq > 1 {
            // Taken over (a restart, another worker's crash, a hibernated
            // execution): rebuild what is open, quietly.
            match journal.read(id) {
                Ok(records) => {
                    let before = records.iter().take_while(|r| r.seq < first_seq).map(|r| (r.at_ms, &r.event));
                    self.tracker.feed(id, before, false, &root_of, &mut Vec::new());
                }
                Err(e) => {
                    tracing::debug!(execution_id = %id, error = %e, "no trace for an execution its journal did not give")
                }
            }
        }
        let before = self.buffer.len();
        // A fork's first records are copies of its original's: not its spans.
        let copied = events.iter().position(|e| matches!(e, Event::Forked { .. })).unwrap_or(0);
        self.tracker.feed(id, events[..copied].iter().map(|e| (at_ms, e)), false, &root_of, &mut Vec::new());
        self.tracker.feed(id, events[copied..].iter().map(|e| (at_ms, e)), true, &root_of, &mut self.buffer);
        if self.oldest.is_none() && self.buffer.len() > before {
            self.oldest = Some(Instant::now());
        }
    }

    /// Post the buffer (in batches of [`BATCH`]); what fails is dropped.
    fn post(&mut self) {
        self.oldest = None;
        while !self.buffer.is_empty() {
            let n = self.buffer.len().min(BATCH);
            let batch: Vec<SpanData> = self.buffer.drain(..n).map(|s| to_data(s, &self.scope)).collect();
            let result = futures::executor::block_on(self.exporter.export(batch));
            let counter = if result.is_ok() { &self.counts.exported } else { &self.counts.failed };
            counter.fetch_add(n as u64, Ordering::Relaxed);
            if let Err(e) = result {
                let quiet = self.failed_at.is_some_and(|t| t.elapsed() < Duration::from_secs(60));
                if !quiet {
                    tracing::warn!(url = %self.url, error = %e, spans = n, "could not post spans to the OTLP endpoint");
                    self.failed_at = Some(Instant::now());
                }
            }
        }
    }
}

fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn to_data(s: Span, scope: &InstrumentationScope) -> SpanData {
    let mut events = SpanEvents::default();
    events.events = s
        .events
        .into_iter()
        .map(|e| opentelemetry::trace::Event::new(e.name, time(e.at_ms), e.attributes, 0))
        .collect();
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(s.trace_id),
            SpanId::from_bytes(s.span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: s.parent.map_or(SpanId::INVALID, SpanId::from_bytes),
        parent_span_is_remote: false,
        span_kind: if s.client { SpanKind::Client } else { SpanKind::Internal },
        name: Cow::Owned(s.name),
        start_time: time(s.start_ms),
        end_time: time(s.end_ms.max(s.start_ms)),
        attributes: s.attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status: match s.error {
            Some(message) => Status::error(message),
            None => Status::Unset,
        },
        instrumentation_scope: scope.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_a_base_url_as_the_opentelemetry_variable_is() {
        let url = |e: &str| OtlpConfig::new(e).traces_url();
        assert_eq!(url("http://127.0.0.1:4318").unwrap(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(url("http://h:4318/").unwrap(), "http://h:4318/v1/traces");
        assert_eq!(url("https://h/otel/v1/traces").unwrap(), "https://h/otel/v1/traces");
        assert!(url("127.0.0.1:4318").unwrap_err().contains("write it as http://127.0.0.1:4318"));
        assert!(url("ftp://h/").unwrap_err().contains("not an http(s) URL"));
        assert!(url("http://[::1/").unwrap_err().contains("is not a URL"));
    }
}
