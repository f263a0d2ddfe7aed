//! Kubernetes and Knative naming rules: DNS labels and subdomains, `kmeta.ChildName`.

use md5::{Digest, Md5};

/// Longest name a Kubernetes object label-style name may have.
pub const MAX_NAME_LEN: usize = 63;

/// Why a name is not a DNS-1035 label (lowercase, starts with a letter), if it is not.
pub fn dns1035_label_error(name: &str) -> Option<String> {
    dns1035_label_errors(name).into_iter().next()
}

/// Kubernetes' `validation.IsDNS1035Label`: why `name` is not a DNS-1035 label, in
/// Kubernetes' words (empty when it is one).
pub fn dns1035_label_errors(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.len() > MAX_NAME_LEN {
        errs.push(format!("must be no more than {MAX_NAME_LEN} characters"));
    }
    let ok = name.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-');
    if !ok {
        errs.push(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', \
             start with an alphabetic character, and end with an alphanumeric character",
            "[a-z]([-a-z0-9]*[a-z0-9])?",
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Kubernetes' `validation.RegexError`: the message, its examples and the regex.
fn regex_error(msg: &str, regex: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{regex}')"));
    out
}

/// Kubernetes' `validation.IsDNS1123Label`: why `value` is not a DNS-1123 label, in
/// Kubernetes' words (empty when it is one).
pub fn dns1123_label_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > MAX_NAME_LEN {
        errs.push(format!("must be no more than {MAX_NAME_LEN} characters"));
    }
    if !label_chars_ok(value) {
        if value.split('.').all(label_chars_ok) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric \
                 characters or '-', and must start and end with an alphanumeric character",
                "[a-z0-9]([-a-z0-9]*[a-z0-9])?",
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Kubernetes' `validation.IsDNS1123Subdomain`: why `value` is not a DNS-1123
/// subdomain, in Kubernetes' words (empty when it is one).
pub fn dns1123_subdomain_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if !value.split('.').all(label_chars_ok) {
        errs.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
             characters, '-' or '.', and must start and end with an alphanumeric character",
            "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
            &["example.com"],
        ));
    }
    errs
}

/// The characters and ends of a DNS-1123 label, whatever its length.
fn label_chars_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// True for a valid DNS-1123 label (lowercase alphanumerics and '-', max 63).
pub fn is_dns1123_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// True for a valid DNS-1123 subdomain (dot-separated labels, max 253).
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns1123_label)
}

/// Why a `generateName` prefix is invalid, if it is (checked as Kubernetes does: the
/// prefix with a trailing '-' removed must be a DNS-1035 label).
pub fn generate_name_error(prefix: &str) -> Option<String> {
    let trimmed = prefix.strip_suffix('-').unwrap_or(prefix);
    dns1035_label_error(trimmed)
}

/// Knative's `kmeta.ChildName(parent, suffix)`: `parent + suffix`, shortened with an md5
/// of the parent so that the result never exceeds 63 characters.
pub fn child_name(parent: &str, suffix: &str) -> String {
    if parent.len() + suffix.len() <= MAX_NAME_LEN {
        return format!("{parent}{suffix}");
    }
    let md5hex = |s: &str| {
        Md5::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    if 31 > suffix.len() {
        let keep = 31 - suffix.len();
        return format!(
            "{}{}{suffix}",
            &parent[..keep.min(parent.len())],
            md5hex(parent)
        );
    }
    let mut name = format!(
        "{}{}",
        &parent[..31.min(parent.len())],
        md5hex(&format!("{parent}{suffix}"))
    );
    let room = MAX_NAME_LEN.saturating_sub(name.len());
    name.push_str(&suffix[..room.min(suffix.len())]);
    name.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_messages_are_kubernetes_own() {
        assert!(dns1123_subdomain_errors("hello.example.com").is_empty());
        assert_eq!(
            dns1123_subdomain_errors("foo@bar.baz"),
            [
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
              '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', \
              regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ]
        );
        assert_eq!(dns1123_subdomain_errors(&"a".repeat(254)).len(), 1);
        assert!(dns1123_label_errors("my-name").is_empty());
        assert_eq!(dns1123_label_errors("a.b"), ["must not contain dots"]);
        assert!(dns1123_label_errors("A_b")[0].contains("(e.g. 'my-name',  or '123-abc', "));
    }

    #[test]
    fn dns1035() {
        assert!(dns1035_label_error("hello-world1").is_none());
        for bad in ["Hello", "1abc", "abc-", "a_b", "", &"a".repeat(64)] {
            assert!(
                dns1035_label_error(bad).is_some(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn subdomains() {
        assert!(is_dns1123_subdomain("hello.example.com"));
        assert!(!is_dns1123_subdomain("hello..com"));
        assert!(!is_dns1123_subdomain("Hello.com"));
    }

    #[test]
    fn child_names_fit_in_63() {
        assert_eq!(child_name("hello", "-00001"), "hello-00001");
        let long = "a".repeat(60);
        let n = child_name(&long, "-00001");
        assert_eq!(n.len(), 31 - 6 + 32 + 6);
        assert!(n.ends_with("-00001"));
        assert!(n.len() <= MAX_NAME_LEN);
    }
}
