//! kn's traffic flags (`--traffic`, `--tag`, `--untag`) and how they turn a Service's
//! traffic block into the next one, with kn's rules and messages.

use std::collections::BTreeSet;
use swell_api::{Service, TrafficTarget};

/// The reference to the latest ready Revision.
const LATEST: &str = "@latest";

/// Traffic flags of `service create|update`.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct TrafficFlags {
    /// Traffic split: `REF=PERCENT` where REF is a Revision, a tag or `@latest`; the
    /// percents must sum to 100. Repeatable or comma-separated (`@latest=90,hello-00001=10`).
    #[arg(long, value_delimiter = ',')]
    pub traffic: Vec<String>,
    /// Tag a Revision: `REVISION=TAG` or `@latest=TAG`; each tag gets its own URL.
    /// Repeatable or comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub tag: Vec<String>,
    /// Remove a tag. Repeatable or comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub untag: Vec<String>,
}

impl TrafficFlags {
    /// Whether any traffic flag was given.
    pub fn any(&self) -> bool {
        !(self.traffic.is_empty() && self.tag.is_empty() && self.untag.is_empty())
    }

    /// The traffic block `svc` gets from these flags. `create` is true for a new Service
    /// (where tags alone also reset the split to what the flags say).
    pub fn compute(&self, svc: &Service, create: bool) -> anyhow::Result<Vec<TrafficTarget>> {
        let split = self.split()?;
        self.check_latest_tags()?;
        let service = svc.metadata.name.as_deref().unwrap_or_default();
        let mut traffic = if svc.spec.traffic.is_empty() {
            vec![target(None, None, 100)]
        } else {
            svc.spec.traffic.clone()
        };

        let missing: Vec<&str> = self
            .untag
            .iter()
            .filter(|tag| {
                let found = traffic
                    .iter_mut()
                    .find(|t| t.tag.as_deref() == Some(tag.as_str()));
                found.map(|t| t.tag = None).is_none()
            })
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "tag(s) {} not present for any revisions of service {service}",
                missing.join(", ")
            );
        }

        for entry in &self.tag {
            let (revision, tag) = split_pair(entry)?;
            let has_tag = |t: &[TrafficTarget]| t.iter().any(|x| x.tag.as_deref() == Some(tag));
            if revision == LATEST {
                let latest = traffic.iter().position(is_latest);
                let existing = latest.and_then(|i| traffic[i].tag.clone());
                if existing.as_deref() == Some(tag) {
                    continue;
                }
                if has_tag(&traffic) {
                    anyhow::bail!(overwriting(tag));
                }
                match (latest, existing) {
                    (_, Some(existing)) => anyhow::bail!(
                        "tag '{existing}' exists on latest ready revision of service, refusing to overwrite existing tag with '{tag}', add flag '--untag {existing}' in command to untag it"
                    ),
                    (Some(i), None) => traffic[i].tag = Some(tag.into()),
                    (None, None) => traffic.push(target(Some(tag), None, 0)),
                }
                continue;
            }
            if traffic.iter().any(|t| {
                t.tag.as_deref() == Some(tag) && t.revision_name.as_deref() == Some(revision)
            }) {
                continue;
            }
            if has_tag(&traffic) {
                anyhow::bail!(overwriting(tag));
            }
            match traffic
                .iter_mut()
                .find(|t| t.revision_name.as_deref() == Some(revision) && t.tag.is_none())
            {
                Some(t) => t.tag = Some(tag.into()),
                None => traffic.push(target(Some(tag), Some(revision), 0)),
            }
        }

        if !split.is_empty() || (create && !self.tag.is_empty()) {
            for t in &mut traffic {
                t.percent = Some(0);
            }
            for (reference, percent) in split {
                if reference == LATEST {
                    match traffic.iter_mut().find(|t| is_latest(t)) {
                        Some(t) => t.percent = Some(percent),
                        None => traffic.push(target(None, None, percent)),
                    }
                } else if let Some(t) = traffic
                    .iter_mut()
                    .find(|t| t.tag.as_deref() == Some(reference))
                {
                    t.percent = Some(percent);
                } else if let Some(t) = traffic
                    .iter_mut()
                    .find(|t| t.revision_name.as_deref() == Some(reference))
                {
                    t.percent = Some(percent);
                } else {
                    traffic.push(target(None, Some(reference), percent));
                }
            }
        }
        traffic.retain(|t| t.tag.is_some() || t.percent.unwrap_or(0) != 0);
        Ok(traffic)
    }

    /// The `--traffic` entries, checked: integers in 0..=100, no reference twice, sum 100.
    fn split(&self) -> anyhow::Result<Vec<(&str, i64)>> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for entry in &self.traffic {
            let (reference, percent) = split_pair(entry)?;
            if !seen.insert(reference) {
                anyhow::bail!(repeated("--traffic", reference));
            }
            let percent = percent.strip_suffix('%').unwrap_or(percent);
            let n: i64 = percent.parse().map_err(|_| {
                anyhow::anyhow!(
                    "error converting given {percent} to integer value for traffic distribution"
                )
            })?;
            if !(0..=100).contains(&n) {
                anyhow::bail!(
                    "invalid value for traffic percent {n}, expected 0 <= percent <= 100"
                );
            }
            out.push((reference, n));
        }
        let sum: i64 = out.iter().map(|(_, p)| p).sum();
        if !out.is_empty() && sum != 100 {
            anyhow::bail!("given traffic percents sum to {sum}, want 100");
        }
        Ok(out)
    }

    fn check_latest_tags(&self) -> anyhow::Result<()> {
        let mut latest = 0;
        for entry in &self.tag {
            if split_pair(entry)?.0 == LATEST {
                latest += 1;
            }
        }
        if latest > 1 {
            anyhow::bail!(repeated("--tag", LATEST));
        }
        Ok(())
    }
}

/// `REF=VALUE`, or a bare `VALUE` meaning `@latest=VALUE`.
fn split_pair(pair: &str) -> anyhow::Result<(&str, &str)> {
    match pair.split_once('=') {
        None if !pair.is_empty() => Ok((LATEST, pair)),
        Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains('=') => Ok((a, b)),
        _ => anyhow::bail!("expecting the value format in value1=value2, given {pair}"),
    }
}

fn is_latest(t: &TrafficTarget) -> bool {
    t.latest_revision == Some(true)
}

fn target(tag: Option<&str>, revision: Option<&str>, percent: i64) -> TrafficTarget {
    TrafficTarget {
        tag: tag.map(Into::into),
        revision_name: revision.map(Into::into),
        latest_revision: Some(revision.is_none()),
        percent: Some(percent),
        ..Default::default()
    }
}

fn overwriting(tag: &str) -> String {
    format!(
        "refusing to overwrite existing tag in service, add flag '--untag {tag}' in command to untag it"
    )
}

fn repeated(flag: &str, reference: &str) -> String {
    let what = if reference == LATEST {
        format!("identifier {LATEST}")
    } else {
        format!("revision reference {reference}")
    };
    format!("repetition of {what} is not allowed, use only once with {flag} flag")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(traffic: &[&str], tag: &[&str], untag: &[&str]) -> TrafficFlags {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        TrafficFlags {
            traffic: v(traffic),
            tag: v(tag),
            untag: v(untag),
        }
    }

    fn svc(traffic: Vec<TrafficTarget>) -> Service {
        let mut s = Service::default();
        s.metadata.name = Some("hello".into());
        s.spec.traffic = traffic;
        s
    }

    fn summary(t: &[TrafficTarget]) -> Vec<(Option<&str>, Option<&str>, i64)> {
        t.iter()
            .map(|t| {
                let r = if is_latest(t) {
                    Some("@latest")
                } else {
                    t.revision_name.as_deref()
                };
                (r, t.tag.as_deref(), t.percent.unwrap_or(0))
            })
            .collect()
    }

    #[test]
    fn split_between_latest_and_a_revision() {
        let out = flags(&["@latest=50", "hello-00001=50"], &[], &[])
            .compute(&svc(vec![]), false)
            .unwrap();
        assert_eq!(
            summary(&out),
            [(Some("@latest"), None, 50), (Some("hello-00001"), None, 50)]
        );
    }

    #[test]
    fn tags_then_percents_by_tag() {
        let out = flags(
            &["current=90", "@latest=10"],
            &["hello-00001=current", "@latest=candidate"],
            &[],
        )
        .compute(&svc(vec![]), false)
        .unwrap();
        assert_eq!(
            summary(&out),
            [
                (Some("@latest"), Some("candidate"), 10),
                (Some("hello-00001"), Some("current"), 90)
            ]
        );
        let untagged = flags(&[], &[], &["current"])
            .compute(&svc(out.clone()), false)
            .unwrap();
        assert_eq!(
            summary(&untagged),
            [
                (Some("@latest"), Some("candidate"), 10),
                (Some("hello-00001"), None, 90)
            ]
        );
    }

    #[test]
    fn a_tag_alone_keeps_the_split_and_a_zero_target_untagged_goes() {
        let tagged = flags(&[], &["hello-00001=old"], &[])
            .compute(&svc(vec![]), false)
            .unwrap();
        assert_eq!(
            summary(&tagged),
            [
                (Some("@latest"), None, 100),
                (Some("hello-00001"), Some("old"), 0)
            ]
        );
        let untagged = flags(&[], &[], &["old"])
            .compute(&svc(tagged), false)
            .unwrap();
        assert_eq!(summary(&untagged), [(Some("@latest"), None, 100)]);
    }

    #[test]
    fn kn_messages() {
        let err = |f: TrafficFlags| f.compute(&svc(vec![]), false).unwrap_err().to_string();
        assert_eq!(
            err(flags(&["@latest=19", "echo-v1=71"], &[], &[])),
            "given traffic percents sum to 90, want 100"
        );
        assert_eq!(
            err(flags(&["@latest=100p"], &[], &[])),
            "error converting given 100p to integer value for traffic distribution"
        );
        assert_eq!(
            err(flags(&["@latest=-100"], &[], &[])),
            "invalid value for traffic percent -100, expected 0 <= percent <= 100"
        );
        assert_eq!(
            err(flags(&["echo-v1=40", "echo-v1=60"], &[], &[])),
            "repetition of revision reference echo-v1 is not allowed, use only once with --traffic flag"
        );
        assert_eq!(
            err(flags(&[], &["@latest=a", "@latest=b"], &[])),
            "repetition of identifier @latest is not allowed, use only once with --tag flag"
        );
        assert_eq!(
            err(flags(&[], &[], &["nope"])),
            "tag(s) nope not present for any revisions of service hello"
        );
        let tagged = flags(&[], &["hello-00001=a"], &[])
            .compute(&svc(vec![]), false)
            .unwrap();
        assert_eq!(
            flags(&[], &["hello-00002=a"], &[])
                .compute(&svc(tagged), false)
                .unwrap_err()
                .to_string(),
            "refusing to overwrite existing tag in service, add flag '--untag a' in command to untag it"
        );
    }
}
