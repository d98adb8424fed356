//! The server trusts no browser: one middleware ([`check`]), in front of
//! everything else (the API-key check included), that refuses what a web
//! page could make a developer's browser send to `jamjet dev`.
//!
//! The threats:
//! - **Cross-origin simple requests.** A page on any site can make the
//!   browser `POST` to `http://127.0.0.1:7700` without asking first (no
//!   CORS preflight) as long as the body is `text/plain`, a form, or has no
//!   type. The browser hides the answer from the page, but the request has
//!   done its work: a registered workflow that starts a command. So a
//!   `POST` must carry `application/json` (or, on `POST /workflows`,
//!   `application/yaml`): types a browser sends cross-origin only after a
//!   preflight, which this server does not grant unless `--cors-origin`
//!   says so.
//! - **Foreign origins.** A request whose `Origin` header names a page that
//!   is not this server's own origin, its `--public-url`, or a
//!   `--cors-origin` is refused, whatever its method (reads and event
//!   streams included: they show what executions hold). A request without
//!   `Origin` (curl, the CLI, SDKs; a browser's same-origin read) passes.
//! - **DNS rebinding.** A page at `http://attacker.example:7700` whose name
//!   the attacker re-points to 127.0.0.1 is same-origin with itself, so the
//!   browser lets it read and write freely; only the `Host` header tells:
//!   `attacker.example:7700`. A `Host` that is not the bind address
//!   (`ip:port`), `localhost:PORT` for a loopback or unspecified bind, an IP
//!   literal with the right port for an unspecified bind (`0.0.0.0`, `::`),
//!   or `--public-url`'s `host[:port]` is refused. A request with no `Host`
//!   (not a browser) passes.
//!
//! On the data dir's Unix socket ([`super::socket`]) the `Host` and
//! `Origin` checks are off: a browser cannot reach it (browsers speak TCP;
//! the file is its owner's only), so whatever those headers say, the peer
//! is a process of the data dir's owner. The content-type check stays.
//!
//! Refusals: 421 `forbidden_host`, 403 `forbidden_origin`, 415
//! `unsupported_media_type`, each naming what came and what is accepted.
//! They happen before any handler, key check or body read, so a refused
//! request changes nothing. A CORS preflight from an unlisted origin is
//! refused here too, never answered by the CORS layer behind.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::extract::{media_type, unsupported};
use super::{ApiError, Config};

/// `host` lowercased (an IPv6 literal without its brackets) and the port,
/// the scheme's default when not written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPort {
    host: String,
    port: u16,
}

impl HostPort {
    fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// An origin: scheme, host and port (`https://app.example` is port 443).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    at: HostPort,
}

impl Origin {
    /// `scheme://host[:port]`, as browsers send it; `None` for anything else
    /// (`null`, a path, a user name).
    fn parse(text: &str) -> Option<Origin> {
        let (scheme, rest) = text.trim().split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return None;
        }
        Some(Origin { scheme, at: host_port(rest, default)? })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, show(&self.at))
    }
}

/// `host[:port]` (`[v6]:port` for IPv6); `default` when no port is written.
fn host_port(text: &str, default: u16) -> Option<HostPort> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        (host, after)
    } else {
        match text.find(':') {
            Some(colon) => (&text[..colon], &text[colon..]),
            None => (text, ""),
        }
    };
    let port = match port {
        "" => default,
        p => p.strip_prefix(':')?.parse().ok()?,
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some(HostPort { host: host.to_ascii_lowercase(), port })
}

fn show(at: &HostPort) -> String {
    match at.ip() {
        Some(IpAddr::V6(_)) => format!("[{}]:{}", at.host, at.port),
        _ => format!("{}:{}", at.host, at.port),
    }
}

/// What the guard accepts, worked out once from the server's [`Config`].
#[derive(Debug)]
pub struct Guard {
    /// On the data dir's Unix socket: `Host` and `Origin` are not checked.
    unix: bool,
    bind: SocketAddr,
    /// `http`, or `https` when served over TLS: the scheme of its own origins.
    scheme: &'static str,
    /// `Host` values accepted besides the unspecified bind's IP literals.
    hosts: Vec<HostPort>,
    /// Origins accepted besides an unspecified bind's own (see [`Guard::origin_ok`]).
    origins: Vec<Origin>,
}

impl Guard {
    pub fn new(config: &Config) -> Guard {
        let bind = config.bind;
        let port = bind.port();
        let ip = bind.ip();
        let scheme = config.scheme();
        let mut hosts = Vec::new();
        let mut origins = Vec::new();
        if !ip.is_unspecified() {
            let own = HostPort { host: ip.to_string(), port };
            origins.push(Origin { scheme: scheme.into(), at: own.clone() });
            hosts.push(own);
        }
        if ip.is_loopback() || ip.is_unspecified() {
            let local = HostPort { host: "localhost".into(), port };
            origins.push(Origin { scheme: scheme.into(), at: local.clone() });
            hosts.push(local);
        }
        if let Some(public) = config.public_url.as_deref().and_then(public_origin) {
            hosts.push(public.at.clone());
            origins.push(public);
        }
        origins.extend(config.cors_origins.iter().filter_map(|o| Origin::parse(o)));
        Guard { unix: config.unix, bind, scheme, hosts, origins }
    }

    /// Whether `host` (a `Host` header; port 0: none written) names this server.
    fn host_ok(&self, host: &HostPort) -> bool {
        if self.hosts.contains(host) {
            return true;
        }
        // A browser leaves out a default port, and a proxy in front of an
        // `https://` public URL passes `Host: name` on: no port names the
        // accepted host at its scheme's default port, 80 or 443.
        if host.port == 0 {
            return self.hosts.iter().any(|h| h.host == host.host && matches!(h.port, 80 | 443));
        }
        // Bound to every address: any of them, written as an IP literal
        // (a name could be re-pointed; an address cannot).
        self.bind.ip().is_unspecified() && host.port == self.bind.port() && host.ip().is_some()
    }

    /// Whether a page at `origin` may call this server; `host` is the
    /// request's own (already accepted) `Host`.
    fn origin_ok(&self, origin: &Origin, host: Option<&HostPort>) -> bool {
        if self.origins.contains(origin) {
            return true;
        }
        // Bound to every address: a page served from the address the
        // request itself went to is this server's own.
        self.bind.ip().is_unspecified()
            && origin.scheme == self.scheme
            && host.is_some_and(|h| *h == origin.at && h.ip().is_some())
    }

    fn accepted_hosts(&self) -> Vec<String> {
        let mut list: Vec<String> = self.hosts.iter().map(show).collect();
        if self.bind.ip().is_unspecified() {
            list.push(format!("any IP address of this machine with port {}", self.bind.port()));
        }
        list
    }

    fn accepted_origins(&self) -> Vec<String> {
        let mut list: Vec<String> = self.origins.iter().map(ToString::to_string).collect();
        if self.bind.ip().is_unspecified() {
            list.push(format!("{}://<the IP address the request went to>:{}", self.scheme, self.bind.port()));
        }
        list
    }
}

/// The origin of `--public-url` (already checked by `jamjet dev`).
fn public_origin(url: &str) -> Option<Origin> {
    let url = reqwest::Url::parse(url).ok()?;
    let port = url.port_or_known_default()?;
    let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    Some(Origin { scheme: url.scheme().to_string(), at: HostPort { host, port } })
}

/// Whether `url` can serve as `--public-url` (http or https, a host, no
/// user name); the reason when it cannot.
pub fn check_public_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("`{url}` must be an http:// or https:// URL"));
    }
    if parsed.host_str().is_none() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("`{url}` must name a host (and no user name)"));
    }
    Ok(())
}

/// Whether `origin` can serve as `--cors-origin`: `scheme://host[:port]`
/// exactly as a browser sends it; the reason when it cannot.
pub fn check_origin(origin: &str) -> Result<(), String> {
    match Origin::parse(origin) {
        Some(_) => Ok(()),
        None => Err(format!(
            "`{origin}` is not an origin: write scheme://host[:port] (http or https, no path), e.g. https://app.example"
        )),
    }
}

/// What a `POST` to `path` must carry.
fn accepted_types(path: &str) -> &'static [&'static str] {
    if path == "/workflows" { &["application/json", "application/yaml"] } else { &["application/json"] }
}

/// Middleware (state: the [`Guard`]): `Host`, then `Origin`, then a
/// `POST`'s content type.
pub async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    // On the Unix socket no browser can be the peer (browsers speak TCP,
    // and the socket is its owner's only): whatever `Host` or `Origin`
    // says, it came from a process of the data dir's owner.
    let host = match headers.get(header::HOST).filter(|_| !guard.unix) {
        None => None,
        Some(raw) => {
            let text = raw.to_str().unwrap_or("");
            match host_port(text, 0).filter(|h| guard.host_ok(h)) {
                Some(h) => Some(h),
                None => return forbidden_host(&guard, &String::from_utf8_lossy(raw.as_bytes())),
            }
        }
    };
    if let Some(raw) = headers.get(header::ORIGIN).filter(|_| !guard.unix) {
        let ok = raw.to_str().ok().and_then(Origin::parse).is_some_and(|o| guard.origin_ok(&o, host.as_ref()));
        if !ok {
            return forbidden_origin(&guard, &String::from_utf8_lossy(raw.as_bytes()));
        }
    }
    if req.method() == Method::POST {
        let takes = accepted_types(req.uri().path());
        let media = media_type(headers);
        if !media.as_deref().is_some_and(|m| takes.contains(&m)) {
            return unsupported(media.as_deref(), &takes.join(" or ")).into_response();
        }
    }
    next.run(req).await
}

/// Header text shown in a message: printable, and not too long.
fn quoted(text: &str) -> String {
    let clean: String = text.chars().map(|c| if c.is_control() { '?' } else { c }).take(200).collect();
    format!("`{clean}`")
}

fn forbidden_host(guard: &Guard, host: &str) -> Response {
    let accepted = guard.accepted_hosts();
    let message = format!(
        "Host {} is not this server's address (a DNS-rebinding page sends its own name); \
         accepted: {}. Reach the server by one of those, or start it with --public-url naming this host",
        quoted(host),
        accepted.join(", ")
    );
    ApiError::new(StatusCode::MISDIRECTED_REQUEST, "forbidden_host", message)
        .with_details(json!({ "host": host, "accepted": accepted }))
        .into_response()
}

fn forbidden_origin(guard: &Guard, origin: &str) -> Response {
    let accepted = guard.accepted_origins();
    let message = format!(
        "Origin {} may not call this server: a web page may only when it is this server's own origin, \
         its --public-url or a --cors-origin; accepted: {}. To let a web app call it, start jamjet dev \
         with --cors-origin ORIGIN",
        quoted(origin),
        accepted.join(", ")
    );
    ApiError::new(StatusCode::FORBIDDEN, "forbidden_origin", message)
        .with_details(json!({ "origin": origin, "accepted": accepted }))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(bind: &str, public: Option<&str>, cors: &[&str]) -> Guard {
        let mut c = Config::new(bind.parse().unwrap());
        c.public_url = public.map(str::to_string);
        c.cors_origins = cors.iter().map(|s| s.to_string()).collect();
        Guard::new(&c)
    }

    fn host_ok(g: &Guard, h: &str) -> bool {
        host_port(h, 0).is_some_and(|h| g.host_ok(&h))
    }

    fn origin_ok(g: &Guard, o: &str, host: &str) -> bool {
        let host = host_port(host, 0);
        Origin::parse(o).is_some_and(|o| g.origin_ok(&o, host.as_ref()))
    }

    #[test]
    fn a_loopback_bind_takes_its_address_and_localhost_and_nothing_else() {
        let g = guard("127.0.0.1:7700", None, &[]);
        for ok in ["127.0.0.1:7700", "localhost:7700", "LOCALHOST:7700"] {
            assert!(host_ok(&g, ok), "{ok}");
        }
        for bad in [
            "attacker.example:7700",
            "127.0.0.1:7701",
            "127.0.0.1",
            "localhost",
            "127.0.0.2:7700",
            "[::1]:7700",
            "localhost.:7700",
            "127.0.0.1:7700:1",
            "",
            "a b:7700",
        ] {
            assert!(!host_ok(&g, bad), "{bad}");
        }
        assert!(origin_ok(&g, "http://127.0.0.1:7700", "127.0.0.1:7700"));
        assert!(origin_ok(&g, "http://localhost:7700/", "127.0.0.1:7700"));
        for bad in ["https://127.0.0.1:7700", "http://evil.example", "null", "http://localhost:7701", "file://"] {
            assert!(!origin_ok(&g, bad, "127.0.0.1:7700"), "{bad}");
        }
    }

    #[test]
    fn an_ipv6_loopback_bind_is_written_in_brackets() {
        let g = guard("[::1]:7700", None, &[]);
        assert!(host_ok(&g, "[::1]:7700") && host_ok(&g, "localhost:7700"));
        assert!(!host_ok(&g, "::1:7700") && !host_ok(&g, "127.0.0.1:7700"));
        assert!(origin_ok(&g, "http://[::1]:7700", "[::1]:7700"));
    }

    #[test]
    fn an_unspecified_bind_takes_ip_literals_on_its_port_and_same_origin_pages_only() {
        let g = guard("0.0.0.0:7700", None, &[]);
        assert!(host_ok(&g, "192.168.1.5:7700") && host_ok(&g, "[fe80::1]:7700") && host_ok(&g, "localhost:7700"));
        assert!(!host_ok(&g, "192.168.1.5:80") && !host_ok(&g, "devbox.lan:7700"));
        assert!(origin_ok(&g, "http://192.168.1.5:7700", "192.168.1.5:7700"));
        assert!(!origin_ok(&g, "http://10.0.0.9:7700", "192.168.1.5:7700"), "another machine's page");
        assert!(!origin_ok(&g, "http://devbox.lan:7700", "devbox.lan:7700"));
    }

    #[test]
    fn public_url_and_cors_origins_are_accepted() {
        let g = guard("127.0.0.1:7700", Some("https://jj.example.com/base"), &["https://app.example", "bad"]);
        assert!(host_ok(&g, "jj.example.com:443") && host_ok(&g, "JJ.example.com:443"));
        assert!(origin_ok(&g, "https://jj.example.com", "jj.example.com:443"));
        assert!(origin_ok(&g, "https://app.example", "127.0.0.1:7700"));
        assert!(origin_ok(&g, "https://app.example:443", "127.0.0.1:7700"));
        assert!(!origin_ok(&g, "http://app.example", "127.0.0.1:7700"), "the scheme is part of an origin");
        // A Host without a port names the public URL at its scheme's default
        // port (a browser, or a TLS proxy passing `Host` on, leaves it out).
        assert!(host_ok(&g, "jj.example.com") && !host_ok(&g, "jj.example.com:80"));
        assert!(!host_ok(&g, "127.0.0.1") && !host_ok(&g, "attacker.example"), "the bind's port is not a default");
        let g = guard("127.0.0.1:7700", Some("http://jj.example.com"), &[]);
        assert!(host_ok(&g, "jj.example.com"));
        let g = guard("127.0.0.1:7700", Some("https://jj.example.com:8443"), &[]);
        assert!(!host_ok(&g, "jj.example.com") && host_ok(&g, "jj.example.com:8443"));
        assert!(check_public_url("ftp://x").is_err() && check_public_url("http://u:p@x").is_err());
        assert!(check_public_url("https://jj.example.com:8443/a2a").is_ok());
    }

    #[test]
    fn a_post_takes_json_and_workflows_also_yaml() {
        assert_eq!(accepted_types("/workflows"), ["application/json", "application/yaml"]);
        assert_eq!(accepted_types("/a2a/greeter"), ["application/json"]);
    }
}
