//! The web UI at `/ui`: one HTML shell, one script and one style sheet,
//! compiled into the binary (`include_str!`), so `jamjet dev` serves it
//! with no separate process, CDN or build step.
//!
//! The page itself holds no data: its script reads and acts through the
//! REST API ([`super::api`]) with the API key the user typed (kept in the
//! tab's `sessionStorage`, sent as `Authorization: Bearer`), so the shell
//! and its assets are public while every data call passes the same key
//! check as any other client. Every answer is written into the page as
//! text (`textContent`), never as markup; [`CSP`] allows only this
//! server's own script, style and fetches, so an injected string cannot
//! run even if one slipped through.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::AppState;

/// What the UI pages may load and do: only this server's own script,
/// style sheet and API; no inline script or style, no frames, no forms
/// posted anywhere, no plugins.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// `/ui` (the shell; the script routes by the fragment: `#/`,
/// `#/executions/{id}`), `/ui/app.js`, `/ui/app.css`. Served without an
/// API key: they hold no data.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/ui/", get(|| async { Redirect::permanent("/ui") }))
        .route("/ui/app.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/ui/app.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
}

/// `body` as `content_type`, with the UI's security headers.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_no_inline_script_and_no_other_origin() {
        assert!(CSP.contains("script-src 'self';"));
        assert!(!CSP.contains("unsafe-inline") && !CSP.contains("unsafe-eval") && !CSP.contains("http"));
    }

    #[test]
    fn the_shell_loads_only_its_own_assets_and_the_script_writes_no_markup() {
        assert!(INDEX.contains(r#"src="/ui/app.js""#) && INDEX.contains(r#"href="/ui/app.css""#));
        assert!(!INDEX.contains("<script>") && !INDEX.contains("style="), "no inline script or style");
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
            assert!(!SCRIPT.contains(sink), "app.js uses {sink}");
        }
    }
}
