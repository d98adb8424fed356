//! Compiling retry policies: the named ones under `retry_policies:` and a
//! node's `retry:` (a mapping, or the name of a policy). Missing fields take
//! [`RetryPolicy::default`]'s values.

use super::Ctx;
use super::yaml::{Scalar, Value, Yaml};
use crate::ir::{Backoff, RetryPolicy};

const FIELDS: &[&str] = &["max_attempts", "backoff", "delay_ms", "max_delay_ms", "jitter", "retry_on"];
const BACKOFFS: &[&str] = &["constant", "linear", "exponential"];
const ERROR_CLASSES: &[&str] = &[
    "timeout",
    "rate_limited",
    "server_error",
    "connection",
    "client_error",
    "invalid_output",
    "template",
    "function",
    "panic",
];

impl Ctx {
    /// `retry_policies:`, into `self.policies`. A policy with findings is
    /// still registered (with defaults) so references to it resolve.
    pub(super) fn retry_policies(&mut self, y: &Yaml) {
        for entry in self.entries(y, "`retry_policies`", "retry policy").unwrap_or_default() {
            let policy = self.retry_policy(&entry.value, &format!("retry policy `{}`", entry.key));
            self.policies.insert(entry.key.clone(), policy.unwrap_or_default());
        }
    }

    /// A node's `retry:`.
    pub(super) fn node_retry(&mut self, y: &Yaml) -> Option<RetryPolicy> {
        match &y.value {
            Value::Map(_) => self.retry_policy(y, "`retry`"),
            Value::Scalar(name, Scalar::Str) => {
                let found = self.policies.get(name).cloned();
                if found.is_none() {
                    let hint = super::did_you_mean(name, self.policies.keys().map(String::as_str));
                    self.add(y.span, format!("unknown retry policy `{name}`{hint}: declare it under `retry_policies`"));
                }
                found
            }
            _ => {
                let message = format!("`retry` must be a mapping or the name of a retry policy, found {}", y.kind());
                self.add(y.span, message);
                None
            }
        }
    }

    fn retry_policy(&mut self, y: &Yaml, owner: &str) -> Option<RetryPolicy> {
        let f = self.fields(y, owner, FIELDS)?;
        let mut policy = RetryPolicy::default();
        let mut ok = true;
        if let Some(y) = f.get("max_attempts") {
            match self.int(y, "max_attempts", 1).map(u32::try_from) {
                Some(Ok(n)) => policy.max_attempts = n,
                Some(Err(_)) => {
                    self.add(y.span, "`max_attempts` is too large");
                    ok = false;
                }
                None => ok = false,
            }
        }
        if let Some(y) = f.get("backoff") {
            match self.string(y, "backoff").as_deref() {
                Some("constant") => policy.backoff = Backoff::Constant,
                Some("linear") => policy.backoff = Backoff::Linear,
                Some("exponential") => policy.backoff = Backoff::Exponential,
                Some(other) => {
                    let expected = BACKOFFS.join(", ");
                    self.add(y.span, format!("unknown backoff `{other}` (expected one of: {expected})"));
                    ok = false;
                }
                None => ok = false,
            }
        }
        for (field, slot) in [("delay_ms", &mut policy.delay_ms), ("max_delay_ms", &mut policy.max_delay_ms)] {
            if let Some(y) = f.get(field) {
                match self.duration(y, field, 0) {
                    Some(n) => *slot = n,
                    None => ok = false,
                }
            }
        }
        if let Some(y) = f.get("jitter") {
            match y.value {
                Value::Scalar(_, Scalar::Bool(b)) => policy.jitter = b,
                _ => {
                    self.add(y.span, format!("`jitter` must be true or false, found {}", y.kind()));
                    ok = false;
                }
            }
        }
        if let Some(y) = f.get("retry_on") {
            policy.retry_on = self.retry_on(y);
            ok &= policy.retry_on.is_some();
        }
        ok.then_some(policy)
    }

    fn retry_on(&mut self, y: &Yaml) -> Option<Vec<String>> {
        let Value::Seq(items) = &y.value else {
            self.add(y.span, format!("`retry_on` must be a list of error classes, found {}", y.kind()));
            return None;
        };
        let classes: Vec<Option<String>> = items
            .iter()
            .map(|item| {
                let class = self.string(item, "an error class")?;
                let known = ERROR_CLASSES.contains(&class.as_str());
                if !known {
                    let hint = super::did_you_mean(&class, ERROR_CLASSES.iter().copied());
                    let expected = ERROR_CLASSES.join(", ");
                    self.add(item.span, format!("unknown error class `{class}`{hint} (expected one of: {expected})"));
                }
                known.then_some(class)
            })
            .collect();
        classes.into_iter().collect()
    }
}
