//! Validation errors that name the offending field the way Knative's `apis.FieldError` does.

use std::fmt;

/// One validation failure: a message, the field paths it concerns and optional details.
///
/// Paths are absolute (`spec.template.spec.containers[0].ports`) once the error has been
/// wrapped with [`FieldError::via`] by every enclosing validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// What is wrong, e.g. `missing field(s)`.
    pub message: String,
    /// The fields concerned, relative to where the error was raised.
    pub paths: Vec<String>,
    /// Extra explanation shown after the message.
    pub details: Option<String>,
}

/// Every validation failure found in one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldError {
    /// A failure with one path.
    pub fn new(message: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            paths: vec![path.into()],
            details: None,
        }
    }

    /// Adds details shown after the message.
    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    /// `missing field(s)`.
    pub fn missing(path: impl Into<String>) -> Self {
        Self::new("missing field(s)", path)
    }

    /// `must not set the field(s)`.
    pub fn disallowed(path: impl Into<String>) -> Self {
        Self::new("must not set the field(s)", path)
    }

    /// `invalid value: <value>`.
    pub fn invalid(value: impl fmt::Display, path: impl Into<String>) -> Self {
        Self::new(format!("invalid value: {value}"), path)
    }

    /// `expected <lo> <= <value> <= <hi>`.
    pub fn out_of_bounds(
        value: impl fmt::Display,
        lo: impl fmt::Display,
        hi: impl fmt::Display,
        path: impl Into<String>,
    ) -> Self {
        Self::new(format!("expected {lo} <= {value} <= {hi}"), path)
    }

    /// `expected exactly one, got both` / `got neither` over several paths.
    pub fn one_of(set: &[&str], paths: &[&str]) -> Self {
        let message = if set.is_empty() {
            "expected exactly one, got neither"
        } else {
            "expected exactly one, got both"
        };
        let chosen = if set.is_empty() { paths } else { set };
        Self {
            message: message.into(),
            paths: chosen.iter().map(|p| (*p).to_string()).collect(),
            details: None,
        }
    }

    /// Prefixes every path with `field` (`ports` + `containerPort` = `ports.containerPort`).
    #[must_use]
    pub fn via(mut self, field: &str) -> Self {
        for p in &mut self.paths {
            *p = join_path(field, p);
        }
        self
    }
}

/// Joins a parent field and a child path; an empty child names the parent itself and an
/// index child (`[0]…`) attaches without a dot.
pub fn join_path(parent: &str, child: &str) -> String {
    if child.is_empty() {
        parent.to_string()
    } else if parent.is_empty() {
        child.to_string()
    } else if child.starts_with('[') {
        format!("{parent}{child}")
    } else {
        format!("{parent}.{child}")
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut paths = self.paths.clone();
        paths.sort();
        write!(f, "{}: {}", self.message, paths.join(", "))?;
        if let Some(d) = &self.details {
            write!(f, "\n{d}")?;
        }
        Ok(())
    }
}

impl FieldErrors {
    /// Records one failure.
    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }

    /// Records every failure of `other`, each prefixed with `field`.
    pub fn extend_via(&mut self, field: &str, other: FieldErrors) {
        self.0.extend(other.0.into_iter().map(|e| e.via(field)));
    }

    /// True when nothing failed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing failed.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl FieldErrors {
    /// Knative's `merge`: failures with the same message and details become one with
    /// every path (deduplicated, sorted); the list is sorted by message, then details.
    pub fn merged(&self) -> Vec<FieldError> {
        let mut out: Vec<FieldError> = Vec::new();
        for e in &self.0 {
            match out
                .iter_mut()
                .find(|m| m.message == e.message && m.details == e.details)
            {
                Some(m) => {
                    for p in &e.paths {
                        if !m.paths.contains(p) {
                            m.paths.push(p.clone());
                        }
                    }
                }
                None => out.push(e.clone()),
            }
        }
        for e in &mut out {
            e.paths.sort();
        }
        out.sort_by(|a, b| {
            (&a.message, a.details.as_deref().unwrap_or(""))
                .cmp(&(&b.message, b.details.as_deref().unwrap_or("")))
        });
        out
    }
}

/// Knative's `FieldError.Error()`: each merged failure as `MESSAGE: PATHS`, its details
/// on the next line, failures one per line.
impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.merged().iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for FieldErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_like_knative() {
        let e = FieldError::missing("image")
            .via("[0]")
            .via("containers")
            .via("spec");
        assert_eq!(e.to_string(), "missing field(s): spec.containers[0].image");
        let e = FieldError::invalid(8012, "").via("ports");
        assert_eq!(e.to_string(), "invalid value: 8012: ports");
    }

    #[test]
    fn failures_merge_and_sort_like_knative() {
        let errs = FieldErrors(vec![
            FieldError::missing("spec.b"),
            FieldError::invalid("x", "spec.c").with_details("why"),
            FieldError::missing("spec.a"),
            FieldError::missing("spec.b"),
        ]);
        assert_eq!(
            errs.to_string(),
            "invalid value: x: spec.c\nwhy\nmissing field(s): spec.a, spec.b"
        );
    }

    #[test]
    fn one_of_names_both_or_neither() {
        let both = FieldError::one_of(&["a", "b"], &["a", "b"]);
        assert_eq!(both.to_string(), "expected exactly one, got both: a, b");
        let neither = FieldError::one_of(&[], &["a", "b"]);
        assert_eq!(
            neither.to_string(),
            "expected exactly one, got neither: a, b"
        );
    }
}
