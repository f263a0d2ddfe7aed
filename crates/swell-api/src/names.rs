//! Kubernetes and Knative naming rules: DNS labels and subdomains, `kmeta.ChildName`.

use md5::{Digest, Md5};

/// Longest name a Kubernetes object label-style name may have.
pub const MAX_NAME_LEN: usize = 63;

/// Why a name is not a DNS-1035 label (lowercase, starts with a letter), if it is not.
pub fn dns1035_label_error(name: &str) -> Option<String> {
    if name.len() > MAX_NAME_LEN {
        return Some(format!("must be no more than {MAX_NAME_LEN} characters"));
    }
    let ok = name.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-');
    (!ok).then(|| {
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', \
         start with an alphabetic character, and end with an alphanumeric character \
         (e.g. 'my-name',  or 'abc-123', regex used for validation is \
         '[a-z]([-a-z0-9]*[a-z0-9])?')"
            .to_string()
    })
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
