//! How the kn-style verbs print: borderless tables (`--no-headers`), `-o yaml|json|name`,
//! ages as kubectl writes them, and colour only when standard output is a terminal.

use anyhow::bail;
use serde::Serialize;
use std::io::IsTerminal;

/// `-o` and `--no-headers`, shared by every `list` and `describe`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutputArgs {
    /// Output format: `yaml`, `json` or `name` (default: a table, or the description).
    #[arg(short = 'o', long, value_parser = ["yaml", "json", "name"])]
    pub output: Option<String>,
    /// Leave out the table's header line.
    #[arg(long)]
    pub no_headers: bool,
}

impl OutputArgs {
    /// Prints `objects` as `-o` asks; false when no `-o` was given (the caller prints its
    /// own table or description). One object (`single`) prints alone, else as a List.
    pub fn print_objects<T>(&self, objects: &[T], single: bool) -> anyhow::Result<bool>
    where
        T: Serialize + k8s_openapi::Resource,
    {
        let Some(format) = self.output.as_deref() else {
            return Ok(false);
        };
        let values: Vec<serde_json::Value> =
            objects.iter().map(document).collect::<Result<_, _>>()?;
        let printed = if single && values.len() == 1 {
            values[0].clone()
        } else {
            serde_json::json!({"apiVersion": "v1", "kind": "List", "items": values})
        };
        match format {
            "json" => println!("{}", serde_json::to_string_pretty(&printed)?),
            "yaml" => print!("{}", serde_saphyr::to_string(&printed)?),
            "name" => {
                let kind = match T::GROUP {
                    "" => T::KIND.to_lowercase(),
                    group => format!("{}.{group}", T::KIND.to_lowercase()),
                };
                for v in &values {
                    println!("{kind}/{}", v["metadata"]["name"].as_str().unwrap_or(""));
                }
            }
            other => bail!("unknown output format {other:?}: use yaml, json or name"),
        }
        Ok(true)
    }
}

/// Keeps only the object named `name` (all when `None`); an error names the resource
/// as the API would when that object does not exist.
pub fn keep_named<T>(items: &mut Vec<T>, name: Option<&str>, namespace: &str) -> anyhow::Result<()>
where
    T: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
{
    let Some(name) = name else {
        return Ok(());
    };
    items.retain(|o| o.metadata().name.as_deref() == Some(name));
    if items.is_empty() {
        bail!(
            "{}.{} {name:?} not found in namespace {namespace:?}",
            T::URL_PATH_SEGMENT,
            T::GROUP
        );
    }
    Ok(())
}

/// `object` as JSON with its `apiVersion` and `kind` first, as the API serves it.
pub fn document<T>(object: &T) -> serde_json::Result<serde_json::Value>
where
    T: Serialize + k8s_openapi::Resource,
{
    let mut out = serde_json::Map::new();
    out.insert("apiVersion".into(), T::API_VERSION.into());
    out.insert("kind".into(), T::KIND.into());
    if let serde_json::Value::Object(fields) = serde_json::to_value(object)? {
        for (k, v) in fields {
            if k != "apiVersion" && k != "kind" {
                out.insert(k, v);
            }
        }
    }
    Ok(serde_json::Value::Object(out))
}

/// Prints rows under `header` in columns three spaces apart, as kn and kubectl do.
pub fn print_table(header: &[&str], rows: &[Vec<String>], no_headers: bool) {
    let mut lines: Vec<Vec<String>> = Vec::new();
    if !no_headers {
        lines.push(header.iter().map(|h| h.to_string()).collect());
    }
    lines.extend(rows.iter().cloned());
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            lines
                .iter()
                .map(|l| visible_width(l.get(c).map_or("", String::as_str)))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in lines {
        let mut out = String::new();
        for (c, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if c + 1 < line.len() {
                let pad = widths[c] - visible_width(cell) + 3;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        println!("{}", out.trim_end());
    }
}

/// Prints rows that each belong to a namespace: with `all_namespaces` (`-A`) a
/// NAMESPACE column comes first, as kubectl and kn show it.
pub fn print_namespaced_table(
    header: &[&str],
    rows: Vec<(String, Vec<String>)>,
    all_namespaces: bool,
    no_headers: bool,
) {
    if !all_namespaces {
        let rows: Vec<Vec<String>> = rows.into_iter().map(|(_, row)| row).collect();
        return print_table(header, &rows, no_headers);
    }
    let header: Vec<&str> = std::iter::once("NAMESPACE")
        .chain(header.iter().copied())
        .collect();
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(ns, row)| std::iter::once(ns).chain(row).collect())
        .collect();
    print_table(&header, &rows, no_headers);
}

/// Characters a terminal shows (colour escapes take no room).
fn visible_width(s: &str) -> usize {
    let mut width = 0;
    let mut in_escape = false;
    for c in s.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => width += 1,
        }
    }
    width
}

/// Whether to colour standard output: a terminal, and `NO_COLOR` unset.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A condition status (`True`, `False`, `Unknown`), green, red or yellow on a terminal.
pub fn status(s: &str) -> String {
    if !colour() {
        return s.to_string();
    }
    let code = match s {
        "True" => "32",
        "False" => "31",
        _ => "33",
    };
    format!("\x1b[{code}m{s}\x1b[0m")
}

/// A bold heading on a terminal.
pub fn bold(s: &str) -> String {
    if colour() {
        format!("\x1b[1m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// Time since `timestamp` as kubectl prints ages: `45s`, `5m7s`, `3h12m`, `2d`.
pub fn age(timestamp: Option<&jiff::Timestamp>) -> String {
    let Some(t) = timestamp else {
        return "<unknown>".into();
    };
    let secs = jiff::Timestamp::now().as_second() - t.as_second();
    short_duration(secs.max(0))
}

/// `secs` the way kubectl's `HumanDuration` writes it.
pub fn short_duration(secs: i64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    match secs {
        s if s < 120 => format!("{s}s"),
        _ if m < 10 => match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        },
        _ if h < 3 => format!("{m}m"),
        _ if h < 8 => match m % 60 {
            0 => format!("{h}h"),
            mm => format!("{h}h{mm}m"),
        },
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 => match h % 24 {
            0 => format!("{d}d"),
            hh => format!("{d}d{hh}h"),
        },
        _ => format!("{d}d"),
    }
}

/// Parses an RFC 3339 time as the API writes it.
pub fn timestamp(s: Option<&str>) -> Option<jiff::Timestamp> {
    s.and_then(|s| s.parse().ok())
}

/// `3 OK / 4`: how many of the conditions are True, of how many.
pub fn conditions_summary(conditions: &[swell_api::Condition]) -> String {
    let ok = conditions.iter().filter(|c| c.status == "True").count();
    format!("{ok} OK / {}", conditions.len())
}

/// A percent bar 20 cells wide: `██████████░░░░░░░░░░`.
pub fn percent_bar(percent: i64) -> String {
    let full = (percent.clamp(0, 100) as usize * 20).div_ceil(100);
    format!("{}{}", "█".repeat(full), "░".repeat(20 - full))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(short_duration(5), "5s");
        assert_eq!(short_duration(119), "119s");
        assert_eq!(short_duration(307), "5m7s");
        assert_eq!(short_duration(600), "10m");
        assert_eq!(short_duration(3 * 3600 + 12 * 60), "3h12m");
        assert_eq!(short_duration(10 * 3600), "10h");
        assert_eq!(short_duration(50 * 3600), "2d2h");
        assert_eq!(short_duration(10 * 86400), "10d");
    }

    #[test]
    fn bars_round_up_a_sliver() {
        assert_eq!(percent_bar(100), "█".repeat(20));
        assert_eq!(percent_bar(0), "░".repeat(20));
        assert_eq!(percent_bar(1).chars().filter(|c| *c == '█').count(), 1);
        assert_eq!(percent_bar(50).chars().filter(|c| *c == '█').count(), 10);
    }

    #[test]
    fn escapes_take_no_width() {
        assert_eq!(visible_width("\x1b[32mTrue\x1b[0m"), 4);
    }
}
