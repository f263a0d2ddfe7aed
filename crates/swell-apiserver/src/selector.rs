//! Label selectors (full set-based syntax) and field selectors, as the Kubernetes API
//! server parses them.

use crate::error::ApiError;
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
enum LabelOp {
    Eq(String),
    Ne(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

/// A parsed `labelSelector`: all requirements must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(Vec<(String, LabelOp)>);

impl LabelSelector {
    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A parsed `fieldSelector`: all terms must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn split_terms(s: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    terms.push(cur);
    terms
        .into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && (v.is_empty()
            || (v.starts_with(|c: char| c.is_ascii_alphanumeric())
                && v.ends_with(|c: char| c.is_ascii_alphanumeric())))
}

/// True for a valid label key: `[prefix/]name`.
pub fn valid_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(swell_api::names::is_dns1123_subdomain)
        && !name.is_empty()
        && valid_value(name)
}

/// True for a valid label value.
pub fn valid_label_value(v: &str) -> bool {
    valid_value(v)
}

impl LabelSelector {
    /// Parses `k=v,k!=v,k in (a,b),k notin (a),k,!k`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = |why: &str| ApiError::bad_request(format!("unable to parse requirement: {why}"));
        let mut reqs = Vec::new();
        for term in split_terms(s) {
            let (key, op) = if let Some(k) = term.strip_prefix('!') {
                (k.trim().to_string(), LabelOp::NotExists)
            } else if let Some((k, rest)) = term
                .split_once(" notin ")
                .or_else(|| term.split_once(" in "))
            {
                let set = rest
                    .trim()
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| bad(&format!("{term:?}: values must be in parentheses")))?;
                let values: Vec<String> = set.split(',').map(|v| v.trim().to_string()).collect();
                if values.iter().any(|v| !valid_value(v)) {
                    return Err(bad(&format!("{term:?}: invalid value")));
                }
                let op = if term.contains(" notin ") {
                    LabelOp::NotIn(values)
                } else {
                    LabelOp::In(values)
                };
                (k.trim().to_string(), op)
            } else if let Some((k, v)) = term.split_once("!=") {
                (k.trim().to_string(), LabelOp::Ne(v.trim().to_string()))
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (k.trim().to_string(), LabelOp::Eq(v.trim().to_string()))
            } else {
                (term.clone(), LabelOp::Exists)
            };
            if !valid_label_key(&key) {
                return Err(bad(&format!("{key:?}: invalid label key")));
            }
            if let LabelOp::Eq(v) | LabelOp::Ne(v) = &op
                && !valid_value(v)
            {
                return Err(bad(&format!("{v:?}: invalid label value")));
            }
            reqs.push((key, op));
        }
        Ok(Self(reqs))
    }

    /// A cheap test on an object's stored JSON that is false only for objects the
    /// selector cannot match: each `=` or `in` requirement's `"key":"value"` must occur
    /// in the bytes. Keys and values a selector accepts need no JSON escaping, so a
    /// matching label is stored as exactly that text.
    pub fn may_match(&self, stored: &[u8]) -> bool {
        self.0.iter().all(|(k, op)| {
            let occurs = |v: &str| {
                let needle = format!("\"{k}\":\"{v}\"");
                memchr::memmem::find(stored, needle.as_bytes()).is_some()
            };
            match op {
                LabelOp::Eq(want) => occurs(want),
                LabelOp::In(set) => set.iter().any(|v| occurs(v)),
                LabelOp::Ne(_) | LabelOp::NotIn(_) | LabelOp::Exists | LabelOp::NotExists => true,
            }
        })
    }

    /// True when the object's labels satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        self.0.iter().all(|(k, op)| {
            let v = labels.and_then(|l| l.get(k)).and_then(Value::as_str);
            match op {
                LabelOp::Eq(want) => v == Some(want.as_str()),
                LabelOp::Ne(want) => v != Some(want.as_str()),
                LabelOp::In(set) => v.is_some_and(|v| set.iter().any(|s| s == v)),
                LabelOp::NotIn(set) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
                LabelOp::Exists => v.is_some(),
                LabelOp::NotExists => v.is_none(),
            }
        })
    }
}

/// Fields each resource can be selected by, besides `metadata.name` and `metadata.namespace`.
fn extra_fields(plural: &str) -> &'static [&'static str] {
    match plural {
        "events" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "secrets" => &["type"],
        "namespaces" => &["status.phase"],
        "pods" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        _ => &[],
    }
}

impl FieldSelector {
    /// Parses `f=v,f==v,f!=v` for the fields `plural` supports.
    pub fn parse(s: &str, plural: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for term in split_terms(s) {
            let (field, eq, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            if !["metadata.name", "metadata.namespace"].contains(&field)
                && !extra_fields(plural).contains(&field)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(Self(terms))
    }

    /// True when the object satisfies every term.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, want)| {
            let pointer = format!("/{}", field.replace('.', "/"));
            let got = obj.pointer(&pointer).and_then(Value::as_str).unwrap_or("");
            (got == want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_stored_bytes_test_never_drops_a_match() {
        let obj = json!({"metadata": {"labels": {"app": "web", "serving.knative.dev/route": "a-b.c"}}, "spec": {"app": "api"}});
        let stored = serde_json::to_vec(&obj).unwrap();
        for (sel, may) in [
            ("app=web", true),
            ("serving.knative.dev/route=a-b.c", true),
            ("app in (api,web)", true),
            ("app=api", true), // "app":"api" occurs in spec: decoded and matched after
            ("app=db", false),
            ("app in (db,cache)", false),
            ("app!=db,tier notin (x),!zone", true),
        ] {
            let s = LabelSelector::parse(sel).unwrap();
            assert_eq!(s.may_match(&stored), may, "{sel}");
            if s.matches(&obj) {
                assert!(s.may_match(&stored), "{sel} matches, so it may match");
            }
        }
    }

    #[test]
    fn label_selectors() {
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web,api)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier=back", false),
            ("serving.knative.dev/service", false),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&obj),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("bad key=v").is_err());
    }

    #[test]
    fn field_selectors() {
        let obj = json!({"metadata": {"name": "hello", "namespace": "default"}, "involvedObject": {"kind": "Service"}});
        assert!(
            FieldSelector::parse("metadata.name=hello", "services")
                .unwrap()
                .matches(&obj)
        );
        assert!(
            !FieldSelector::parse("metadata.name!=hello", "services")
                .unwrap()
                .matches(&obj)
        );
        assert!(
            FieldSelector::parse(
                "involvedObject.kind=Service,metadata.namespace=default",
                "events"
            )
            .unwrap()
            .matches(&obj)
        );
        let err = FieldSelector::parse("spec.foo=bar", "services").unwrap_err();
        assert_eq!(err.message, "field label not supported: spec.foo");
    }
}
