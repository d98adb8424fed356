//! `GET /metrics`: Prometheus text exposition (prometheus-client's
//! encoder), gathered at scrape time:
//!
//! - `jamjet_executions{status}` (gauge): executions in the journal by status;
//! - `jamjet_node_duration_seconds{type}` (histogram): node latency by node
//!   type, from every durable `NodeCompleted`;
//! - `jamjet_journal_sync_seconds` (histogram): every disk sync of the
//!   journal's write-ahead log;
//! - `jamjet_queue_depth` (gauge): executions live in memory (running, or
//!   parked but not hibernated): the work the runtime holds right now;
//! - `jamjet_http_requests_total{method,route,status}` (counter): requests
//!   by matched route (the template, e.g. `/executions/{id}`) and status;
//! - `jamjet_process_cpu_seconds_total` (counter),
//!   `jamjet_process_resident_memory_bytes` and
//!   `jamjet_process_peak_resident_memory_bytes` (gauges): the server
//!   process's CPU time and memory ([`crate::procstat`]), which
//!   `jamjet bench --server` reads before and after its load.
//!
//! - on a shared store (PostgreSQL): `jamjet_lease_claims_total`,
//!   `jamjet_lease_claimed_executions_total`, `jamjet_lease_renewals_total`
//!   and `jamjet_lease_fenced_appends_total` (counters: claims made,
//!   executions taken, renewal rounds, appends refused by the fence) and
//!   `jamjet_lease_owned_executions` (gauge: what this process holds now).
//!
//! - with `--otlp-endpoint`: `jamjet_otlp_spans_exported_total`,
//!   `jamjet_otlp_spans_failed_total` and `jamjet_otlp_appends_dropped_total`
//!   (counters: spans the collector took, spans of failed posts, appends
//!   left out of traces because the exporter's queue was full).
//!
//! [`HttpMetrics`] counts requests in a middleware ([`count`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{ApiError, AppState};
use crate::journal::Status;
use crate::journal::latency::{JOURNAL_SYNC, Snapshot};

/// The Prometheus text format's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Requests by (method, route, status).
#[derive(Debug, Default)]
pub struct HttpMetrics {
    counts: Mutex<HashMap<(String, String, u16), u64>>,
}

/// Middleware: count every request by method, matched route and status.
pub async fn count(State(m): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let res = next.run(req).await;
    *m.counts.lock().expect("metrics lock").entry((method, route, res.status().as_u16())).or_default() += 1;
    res
}

/// What one scrape reports.
#[derive(Debug)]
struct Scrape {
    executions: Vec<(Status, u64)>,
    queue_depth: u64,
    nodes: Vec<(&'static str, Snapshot)>,
    sync: Snapshot,
    http: Vec<((String, String, u16), u64)>,
    process: crate::procstat::Usage,
    leases: Option<crate::journal::LeaseCounters>,
    otlp: Option<crate::runtime::OtlpCounts>,
}

fn histogram(enc: &mut prometheus_client::encoding::MetricEncoder<'_>, s: &Snapshot) -> Result<(), std::fmt::Error> {
    enc.encode_histogram::<NoLabelSet>(s.sum_seconds, s.count, &s.buckets, None)
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut e =
            encoder.encode_descriptor("executions", "Executions in the journal by status", None, MetricType::Gauge)?;
        for (status, n) in &self.executions {
            e.encode_family(&[("status", status.as_str())])?.encode_gauge(&(*n as i64))?;
        }
        let mut e = encoder.encode_descriptor(
            "queue_depth",
            "Executions live in memory (running, or parked and not hibernated)",
            None,
            MetricType::Gauge,
        )?;
        e.encode_gauge(&(self.queue_depth as i64))?;
        let mut e = encoder.encode_descriptor(
            "node_duration_seconds",
            "Node latency by node type (durable NodeCompleted duration)",
            None,
            MetricType::Histogram,
        )?;
        for (kind, s) in &self.nodes {
            histogram(&mut e.encode_family(&[("type", *kind)])?, s)?;
        }
        let mut e = encoder.encode_descriptor(
            "journal_sync_seconds",
            "Disk syncs of the journal's write-ahead log",
            None,
            MetricType::Histogram,
        )?;
        histogram(&mut e, &self.sync)?;
        let mut e = encoder.encode_descriptor(
            "http_requests",
            "HTTP requests by route and status",
            None,
            MetricType::Counter,
        )?;
        for ((method, route, status), n) in &self.http {
            let status = status.to_string();
            let labels = [("method", method.as_str()), ("route", route.as_str()), ("status", status.as_str())];
            e.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(n, None)?;
        }
        let p = &self.process;
        encoder
            .encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time of the process",
                None,
                MetricType::Counter,
            )?
            .encode_counter::<NoLabelSet, _, u64>(&p.cpu_seconds, None)?;
        encoder
            .encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory of the process",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&(p.rss_bytes as i64))?;
        encoder
            .encode_descriptor(
                "process_peak_resident_memory_bytes",
                "The most resident memory the process has had",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&(p.peak_rss_bytes as i64))?;
        if let Some(o) = &self.otlp {
            for (name, help, n) in [
                ("otlp_spans_exported", "Spans the OTLP collector accepted", o.spans_exported),
                ("otlp_spans_failed", "Spans of OTLP posts that failed (dropped)", o.spans_failed),
                (
                    "otlp_appends_dropped",
                    "Appends left out of traces: the exporter's queue was full",
                    o.appends_dropped,
                ),
            ] {
                encoder
                    .encode_descriptor(name, help, None, MetricType::Counter)?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }
        if let Some(l) = &self.leases {
            for (name, help, n) in [
                ("lease_claims", "Claims this process made on the shared store", l.claims),
                ("lease_claimed_executions", "Executions those claims took", l.claimed),
                ("lease_renewals", "Lease renewal rounds (one statement each)", l.renewals),
                ("lease_fenced_appends", "Appends refused because this process no longer held the lease", l.fenced),
            ] {
                encoder
                    .encode_descriptor(name, help, None, MetricType::Counter)?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
            encoder
                .encode_descriptor(
                    "lease_owned_executions",
                    "Executions this process holds now",
                    None,
                    MetricType::Gauge,
                )?
                .encode_gauge(&(l.owned as i64))?;
        }
        Ok(())
    }
}

/// `GET /metrics`.
pub async fn serve(
    State(st): State<AppState>,
    http: Option<axum::Extension<Arc<HttpMetrics>>>,
) -> Result<Response, ApiError> {
    let mut by_status: HashMap<Status, u64> = HashMap::new();
    for m in st.rt.list(None)? {
        *by_status.entry(m.status).or_default() += 1;
    }
    let executions = [Status::Running, Status::Waiting, Status::Completed, Status::Failed, Status::Cancelled]
        .into_iter()
        .map(|s| (s, by_status.get(&s).copied().unwrap_or(0)))
        .collect();
    let queue_depth = st.rt.live().await?.len() as u64;
    let mut http: Vec<_> = match http {
        Some(h) => h.0.counts.lock().expect("metrics lock").iter().map(|(k, v)| (k.clone(), *v)).collect(),
        None => Vec::new(),
    };
    http.sort();
    let scrape = Scrape {
        executions,
        queue_depth,
        nodes: st.rt.node_latency(),
        sync: JOURNAL_SYNC.snapshot(),
        http,
        process: crate::procstat::usage(),
        leases: st.rt.lease_counters(),
        otlp: st.rt.otlp_counts(),
    };
    let mut registry = Registry::with_prefix("jamjet");
    registry.register_collector(Box::new(scrape));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).map_err(|e| {
        ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("encoding metrics: {e}"))
    })?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}
