//! What an `http` node journals of each attempt, as its [`Exchange`]: the
//! method, the URL, the headers sent and received and the bodies, so
//! `jamjet inspect -v` shows what the call sent and what came back.
//!
//! Secrets stay out: the value of every header that carries credentials
//! (`Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`,
//! `X-Api-Key`, and any whose name contains `key`, `token`, `secret` or
//! `password`, in any case) is journaled as `[redacted]`, and so is every
//! URL query parameter so named and a password in the URL. The runtime's
//! own `Idempotency-Key` is kept: it names the execution, node and visit,
//! and a receiver deduplicates on it. Each body is kept up to
//! [`BODY_BYTES`]; what is past that is cut, and the text says how many
//! bytes were.

use reqwest::header::HeaderMap;
use serde_json::{Map, Value, json};

use super::Exchange;

/// The most of a request or response body an exchange keeps.
pub const BODY_BYTES: usize = 16 * 1024;

/// What a redacted value is journaled as.
pub const REDACTED: &str = "[redacted]";

/// Header names that always carry credentials.
const SECRET_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"];

/// Words that mark a header or query parameter as a secret.
const SECRET_WORDS: &[&str] = &["key", "token", "secret", "password"];

/// Whether a header or query parameter named `name` holds a secret.
pub fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    if name == "idempotency-key" {
        return false;
    }
    SECRET_HEADERS.contains(&name.as_str()) || SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// Headers as a JSON object, secrets redacted; a name sent more than once
/// holds a list of its values.
pub fn headers(map: &HeaderMap) -> Value {
    let mut out = Map::new();
    for name in map.keys() {
        let values: Vec<Value> = map
            .get_all(name)
            .iter()
            .map(|v| match is_secret(name.as_str()) {
                true => Value::from(REDACTED),
                false => Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            })
            .collect();
        let value = match <[Value; 1]>::try_from(values) {
            Ok([one]) => one,
            Err(many) => Value::Array(many),
        };
        out.insert(name.as_str().to_string(), value);
    }
    Value::Object(out)
}

/// A URL with its password and secret query parameters redacted.
pub fn url(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some(REDACTED));
    }
    if url.query_pairs().any(|(k, _)| is_secret(&k)) {
        // Pair by pair as written, so what is not a secret reads as sent.
        // (The decoded names line up with the written pairs: both skip
        // empty ones.)
        let query = url.query().unwrap_or_default().to_string();
        let names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        let pairs: Vec<String> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .zip(&names)
            .map(|(pair, name)| match is_secret(name) {
                true => format!("{}={REDACTED}", pair.split('=').next().unwrap_or_default()),
                false => pair.to_string(),
            })
            .collect();
        url.set_query(Some(&pairs.join("&")));
    }
    url.to_string()
}

/// A URL given as text (as written, with `${VAR}` references, so it may
/// not parse): redacted as [`url`] does when it parses, kept as it is
/// otherwise (its references hold no value).
pub fn url_text(text: &str) -> String {
    match reqwest::Url::parse(text) {
        Ok(u) => url(&u),
        Err(_) => text.to_string(),
    }
}

/// A body as the exchange keeps it: JSON as its value, text as a string,
/// anything longer than [`BODY_BYTES`] cut there with a note of how many
/// bytes were cut, bytes that are not UTF-8 text as a note of their size.
pub fn body(bytes: &[u8]) -> Value {
    if bytes.len() <= BODY_BYTES {
        return match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::from(text)),
            Err(_) => Value::from(format!("[{} bytes, not UTF-8 text]", bytes.len())),
        };
    }
    let head = &bytes[..BODY_BYTES];
    // A character cut in two at the limit is left out whole.
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).expect("valid up to there"),
        Err(_) => return Value::from(format!("[{} bytes, not UTF-8 text]", bytes.len())),
    };
    let cut = bytes.len() - text.len();
    Value::from(format!("{text}…[{cut} more bytes not journaled]"))
}

/// The request as sent: method, URL, headers, body.
pub fn request(req: &reqwest::Request) -> Value {
    let mut out = json!({
        "method": req.method().as_str(),
        "url": url(req.url()),
        "headers": headers(req.headers()),
    });
    if let Some(bytes) = req.body().and_then(|b| b.as_bytes()) {
        out["body"] = body(bytes);
    }
    out
}

/// The status and headers of a response, before its body is read.
pub fn response_head(resp: &reqwest::Response) -> Value {
    json!({ "status": resp.status().as_u16(), "headers": headers(resp.headers()) })
}

/// An exchange whose response came (`head` from [`response_head`]) with
/// this body.
pub fn answered(request: Value, mut head: Value, bytes: &[u8]) -> Exchange {
    if !bytes.is_empty() {
        head["body"] = body(bytes);
    }
    Exchange { request, response: head, usage: Default::default() }
}

/// An exchange that got no (whole) response: `head` as far as it came,
/// and why it stopped.
pub fn broken(request: Value, head: Option<Value>, error: &str) -> Exchange {
    let mut response = head.unwrap_or_else(|| json!({}));
    response["error"] = Value::from(error);
    Exchange { request, response, usage: Default::default() }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderName, HeaderValue};

    use super::*;

    #[test]
    fn credentials_are_redacted_by_name_in_any_case() {
        for name in [
            "Authorization",
            "proxy-authorization",
            "Cookie",
            "Set-Cookie",
            "X-API-KEY",
            "x-goog-api-key",
            "X-Auth-Token",
            "Client-Secret",
            "x-db-PASSWORD",
        ] {
            assert!(is_secret(name), "{name}");
        }
        for name in ["Content-Type", "Accept", "Idempotency-Key", "User-Agent", "X-Request-Id"] {
            assert!(!is_secret(name), "{name}");
        }
        let mut map = HeaderMap::new();
        map.insert("authorization", HeaderValue::from_static("Bearer sk-live-1"));
        map.insert("content-type", HeaderValue::from_static("application/json"));
        map.append(HeaderName::from_static("set-cookie"), HeaderValue::from_static("a=1"));
        map.append(HeaderName::from_static("set-cookie"), HeaderValue::from_static("b=2"));
        map.insert("idempotency-key", HeaderValue::from_static("exec_1/call/1"));
        let v = headers(&map);
        assert_eq!(v["authorization"], REDACTED);
        assert_eq!(v["content-type"], "application/json");
        assert_eq!(v["set-cookie"], json!([REDACTED, REDACTED]));
        assert_eq!(v["idempotency-key"], "exec_1/call/1");
        assert!(!v.to_string().contains("sk-live"), "{v}");
    }

    #[test]
    fn a_url_keeps_its_shape_without_its_secrets() {
        let u =
            reqwest::Url::parse("https://ada:hunter2@api.test/v1/x?q=sky&api_key=k1&Access_Token=t&page=2").unwrap();
        let shown = url(&u);
        assert!(!shown.contains("hunter2") && !shown.contains("k1") && !shown.contains("=t&"), "{shown}");
        assert!(shown.contains("q=sky") && shown.contains("page=2") && shown.contains("api.test/v1/x"), "{shown}");
        let plain = reqwest::Url::parse("http://127.0.0.1:8080/a?b=c").unwrap();
        assert_eq!(url(&plain), "http://127.0.0.1:8080/a?b=c");
    }

    #[test]
    fn bodies_are_json_text_or_cut_at_the_limit_saying_how_much() {
        assert_eq!(body(br#"{"a":[1,2]}"#), json!({"a": [1, 2]}));
        assert_eq!(body(b"plain words"), json!("plain words"));
        assert_eq!(body(&[0xff, 0xfe, 0]), json!("[3 bytes, not UTF-8 text]"));
        let long = "x".repeat(BODY_BYTES + 100);
        let kept = body(long.as_bytes());
        let text = kept.as_str().unwrap();
        assert!(text.starts_with(&"x".repeat(BODY_BYTES)), "kept up to the limit");
        assert!(text.ends_with("…[100 more bytes not journaled]"), "{}", &text[BODY_BYTES..]);
        // A character the limit cuts in two is left out whole.
        let mut split = "y".repeat(BODY_BYTES - 1);
        split.push('é');
        split.push_str("zz");
        let kept = body(split.as_bytes());
        assert!(kept.as_str().unwrap().ends_with("y…[4 more bytes not journaled]"), "{kept}");
    }
}
