//! The simulator behind `swell autoscaler simulate`: reads a JSON-lines trace (one tick
//! per line) and writes the decider's output for each tick, through the same windows,
//! spec resolution and decider the server runs.
//!
//! A trace line (every field optional but `time`):
//! `{"time": 12, "ready": 3, "concurrency": 41.5, "stable": 20, "panic": 35,
//!   "containerConcurrency": 10, "reachable": true, "annotations": {...}, "config": {...}}`.
//! `concurrency` is a raw per-second sample recorded into the stable and panic windows;
//! `stable`/`panic` give the window averages directly instead. `annotations`
//! (`autoscaling.knative.dev/*`, with or without the prefix) and `config`
//! (`config-autoscaler` keys) apply from that line on.

use crate::decider::Decider;
use crate::spec::{Spec, resolve};
use crate::window::Window;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use swell_api::annotations::Autoscaling;
use swell_api::config;

/// `config-autoscaler` data or a Revision's annotations, as a trace gives them.
type Data = BTreeMap<String, String>;

/// One tick of a trace.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Tick {
    /// Seconds.
    time: f64,
    ready: Option<u32>,
    concurrency: Option<f64>,
    stable: Option<f64>,
    panic: Option<f64>,
    container_concurrency: Option<u64>,
    reachable: Option<bool>,
    #[serde(default)]
    annotations: Data,
    #[serde(default)]
    config: Data,
}

/// The decider's output for one tick.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// The tick's time.
    pub time: f64,
    /// Replicas wanted.
    pub desired: i32,
    /// Excess burst capacity.
    pub excess_burst_capacity: f64,
    /// Panic mode is on.
    pub panicking: bool,
    /// The stable window's value used.
    pub stable_value: f64,
    /// The panic window's value used.
    pub panic_value: f64,
}

/// Why a trace could not be simulated.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// A line is not a valid tick.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The simulation's state between ticks.
struct Simulation {
    config_data: Data,
    annotations: Data,
    container_concurrency: u64,
    reachable: bool,
    ready: u32,
    spec: Spec,
    stable: Window,
    panic: Window,
    decider: Option<Decider>,
    last_time: f64,
}

fn prefixed(ann: Data) -> Data {
    ann.into_iter()
        .map(|(k, v)| {
            if k.contains('/') {
                (k, v)
            } else {
                (format!("autoscaling.knative.dev/{k}"), v)
            }
        })
        .collect()
}

/// The spec the configuration and annotations resolve to, parsed as the server parses
/// them; the message says why not.
fn spec(
    config_data: &Data,
    annotations: &Data,
    container_concurrency: u64,
    reachable: bool,
) -> Result<Spec, String> {
    let cfg = config::Autoscaler::from_data(config_data).map_err(|e| e.to_string())?;
    let ann = Autoscaling::parse(annotations).map_err(|e| e.to_string())?;
    resolve(&cfg, &ann, container_concurrency, reachable).map_err(|e| e.to_string())
}

impl Simulation {
    fn new(config_data: Data) -> Result<Self, String> {
        let spec = spec(&config_data, &Data::new(), 0, true)?;
        Ok(Simulation {
            stable: Window::new(spec.decider.stable_window, spec.algorithm),
            panic: Window::new(spec.panic_window, spec.algorithm),
            config_data,
            annotations: Data::new(),
            container_concurrency: 0,
            reachable: true,
            ready: 0,
            spec,
            decider: None,
            last_time: f64::NEG_INFINITY,
        })
    }

    fn tick(&mut self, t: Tick) -> Result<Output, String> {
        if !t.time.is_finite() || t.time < 0.0 || t.time < self.last_time {
            return Err(format!(
                "time {} must be a number of seconds, not before the previous line",
                t.time
            ));
        }
        self.last_time = t.time;
        let respec = !t.annotations.is_empty()
            || !t.config.is_empty()
            || t.container_concurrency.is_some()
            || t.reachable.is_some();
        self.config_data.extend(t.config);
        self.annotations.extend(prefixed(t.annotations));
        self.container_concurrency = t
            .container_concurrency
            .unwrap_or(self.container_concurrency);
        self.reachable = t.reachable.unwrap_or(self.reachable);
        if respec {
            let spec = spec(
                &self.config_data,
                &self.annotations,
                self.container_concurrency,
                self.reachable,
            )?;
            if spec.decider.stable_window != self.spec.decider.stable_window
                || spec.panic_window != self.spec.panic_window
                || spec.algorithm != self.spec.algorithm
            {
                self.stable = Window::new(spec.decider.stable_window, spec.algorithm);
                self.panic = Window::new(spec.panic_window, spec.algorithm);
            }
            self.spec = spec;
        }
        if let Some(r) = t.ready {
            self.ready = r;
        }
        let second = t.time.floor() as u64;
        if let Some(c) = t.concurrency {
            if !c.is_finite() || c < 0.0 {
                return Err(format!("concurrency {c} must be a number >= 0"));
            }
            self.stable.record(second, c);
            self.panic.record(second, c);
        }
        let stable_value = match t.stable {
            Some(v) => v,
            None => self.stable.average(second),
        };
        let panic_value = match t.panic {
            Some(v) => v,
            None => self.panic.average(second),
        };
        for v in [stable_value, panic_value] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("window value {v} must be a number >= 0"));
            }
        }
        let ready = self.ready;
        let decider = self
            .decider
            .get_or_insert_with(|| Decider::new(ready, t.time));
        let d = decider.scale(&self.spec.decider, t.time, ready, stable_value, panic_value);
        Ok(Output {
            time: t.time,
            desired: d.desired,
            excess_burst_capacity: d.excess_burst_capacity,
            panicking: d.panicking,
            stable_value,
            panic_value,
        })
    }
}

/// Simulates the trace read from `input` with `config-autoscaler` data `config`,
/// writing one JSON line per tick to `output`. Blank lines and lines starting with `#`
/// are skipped. Stops at the first invalid line.
pub fn run(config: Data, input: impl BufRead, mut output: impl Write) -> Result<(), SimulateError> {
    let mut sim = Simulation::new(config).map_err(|message| SimulateError::Line {
        line: 0,
        message: format!("--config: {message}"),
    })?;
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let bad = |message: String| SimulateError::Line {
            line: i + 1,
            message,
        };
        let tick: Tick = serde_json::from_str(trimmed).map_err(|e| bad(e.to_string()))?;
        let out = sim.tick(tick).map_err(bad)?;
        serde_json::to_writer(&mut output, &out).map_err(std::io::Error::from)?;
        output.write_all(b"\n")?;
    }
    output.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simulate(config: &[(&str, &str)], trace: &str) -> Result<Vec<Output>, String> {
        let cfg = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut out = Vec::new();
        run(cfg, trace.as_bytes(), &mut out).map_err(|e| e.to_string())?;
        Ok(String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                Output {
                    time: v["time"].as_f64().unwrap(),
                    desired: v["desired"].as_i64().unwrap() as i32,
                    excess_burst_capacity: v["excessBurstCapacity"].as_f64().unwrap(),
                    panicking: v["panicking"].as_bool().unwrap(),
                    stable_value: v["stableValue"].as_f64().unwrap(),
                    panic_value: v["panicValue"].as_f64().unwrap(),
                }
            })
            .collect())
    }

    #[test]
    fn raw_samples_fill_the_windows_and_a_burst_panics() {
        // containerConcurrency 10 → target 7; stable window 60 s, panic window 6 s.
        let trace = r#"{"time": 0, "ready": 1, "containerConcurrency": 10, "concurrency": 7}
{"time": 1, "concurrency": 7}
# a burst
{"time": 2, "concurrency": 70}
"#;
        let out = simulate(&[], trace).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!((out[0].desired, out[0].panicking), (1, false));
        assert_eq!(
            out[0].excess_burst_capacity,
            (10.0 - 211.0 - 7.0_f64).floor()
        );
        // At 2 s both windows have seen 0..=2: (7 + 7 + 70) / 3 = 28 → 4 replicas, and
        // 4 / 1 ready ≥ 2: panic.
        assert_eq!(out[2].stable_value, 28.0);
        assert_eq!(out[2].panic_value, 28.0);
        assert_eq!((out[2].desired, out[2].panicking), (4, true));
    }

    #[test]
    fn observed_values_and_overrides() {
        let trace = r#"{"time": 0, "ready": 2, "stable": 0, "panic": 0}
{"time": 2, "ready": 2, "stable": 0, "panic": 0, "reachable": false}
{"time": 4, "ready": 2, "stable": 150, "panic": 150, "annotations": {"target": "50", "target-utilization-percentage": "100"}}
"#;
        let out = simulate(&[("max-scale-up-rate", "2")], trace).unwrap();
        // Two replicas at start: panic mode holds them.
        assert_eq!((out[0].desired, out[0].panicking), (2, true));
        // Unreachable: still panicking (within the stable window), holds 2.
        assert_eq!(out[1].desired, 2);
        // Target 50: 150 → 3 replicas, within the up rate of 2 × 2.
        assert_eq!(out[2].desired, 3);
    }

    #[test]
    fn bad_lines_are_named() {
        let err = simulate(&[], "{\"time\": 0}\n{\"tme\": 1}\n").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        let err = simulate(&[], "{\"time\": 5}\n{\"time\": 1}\n").unwrap_err();
        assert!(err.contains("not before the previous line"), "{err}");
        let err = simulate(
            &[],
            "{\"time\": 0, \"annotations\": {\"window\": \"1s\"}}\n",
        )
        .unwrap_err();
        assert!(err.contains("window"), "{err}");
        let err = simulate(&[("stable-window", "1s")], "").unwrap_err();
        assert!(err.contains("--config"), "{err}");
    }
}
