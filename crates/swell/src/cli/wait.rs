//! Waiting for a Service to be ready after `create`/`update`, showing its steps as kn does:
//! on a terminal, one line per step (configuration, revision, route, ingress) with a
//! spinner that turns into ✓ or ✗; in a pipe, a timestamped line per change and no
//! escape codes.

use anyhow::bail;
use kube::Api;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use swell_api::{Condition, Revision, Route, Service};

/// `--no-wait` and `--wait-timeout`, shared by the verbs that change a Service.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitFlags {
    /// Return as soon as the change is accepted, without waiting for it to be ready.
    #[arg(long = "no-wait")]
    pub no_wait: bool,
    /// Seconds to wait for the Service to be ready.
    #[arg(long = "wait-timeout", default_value_t = 600, value_name = "SECONDS")]
    pub wait_timeout: u64,
}

impl WaitFlags {
    /// Waits (unless `--no-wait`) until `name` is gone from `api`, failing once
    /// `--wait-timeout` has passed since `since`. `kind` names it in the error.
    pub async fn until_gone<K>(
        &self,
        api: &Api<K>,
        kind: &str,
        name: &str,
        since: tokio::time::Instant,
    ) -> anyhow::Result<()>
    where
        K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    {
        let deadline = since + Duration::from_secs(self.wait_timeout);
        while !self.no_wait && api.get_opt(name).await?.is_some() {
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "timeout: {kind} '{name}' not deleted after {} seconds",
                    self.wait_timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// How often to look: often at first (most changes are ready within a second), then less.
fn poll_interval(elapsed: Duration) -> Duration {
    if elapsed < Duration::from_secs(2) {
        Duration::from_millis(25)
    } else {
        Duration::from_millis(100)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Waiting,
    Done,
    Failed,
}

/// One line of progress.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    title: String,
    state: State,
    message: String,
}

impl Step {
    fn from_condition(title: String, condition: Option<&Condition>, waiting: &str) -> Step {
        let (state, message) = match condition {
            Some(c) if c.status == "True" => (State::Done, "ready".to_string()),
            Some(c) if c.status == "False" => (State::Failed, reason_message(c)),
            Some(c) if !c.message.is_empty() => (State::Waiting, c.message.clone()),
            Some(c) if !c.reason.is_empty() => (State::Waiting, c.reason.clone()),
            _ => (State::Waiting, waiting.to_string()),
        };
        Step {
            title,
            state,
            message,
        }
    }
}

fn reason_message(c: &Condition) -> String {
    match (c.reason.as_str(), c.message.as_str()) {
        ("", m) => m.to_string(),
        (r, "") => r.to_string(),
        (r, m) => format!("{r}: {m}"),
    }
}

/// Waits until `name` has reconciled `generation` and is Ready, printing progress to
/// standard output. Fails with the Ready condition's reason and message when it turns
/// False, or after the timeout.
pub async fn until_ready(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    generation: i64,
    timeout: Duration,
) -> anyhow::Result<Service> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let revisions: Api<Revision> = Api::namespaced(client.clone(), namespace);
    let routes: Api<Route> = Api::namespaced(client.clone(), namespace);
    let mut view = View::new(std::io::stdout().is_terminal());
    let start = Instant::now();
    let mut tick = 0usize;
    loop {
        let svc = services.get(name).await?;
        let status = svc.status.clone().unwrap_or_default();
        let observed = status.status.observed_generation.unwrap_or(0) >= generation;
        let conditions = |t: &str| {
            observed
                .then(|| status.status.condition(t))
                .flatten()
                .cloned()
        };
        let configuration = Step::from_condition(
            format!("Configuration {name:?}"),
            conditions("ConfigurationsReady").as_ref(),
            if observed {
                "waiting for its latest Revision"
            } else {
                "waiting for the controller"
            },
        );
        let latest = observed
            .then(|| status.configuration.latest_created_revision_name.clone())
            .flatten();
        let revision = match &latest {
            Some(r) => {
                let rev = revisions.get_opt(r).await?;
                let ready = rev
                    .as_ref()
                    .and_then(|r| r.status.as_ref())
                    .and_then(|s| s.status.condition("Ready"))
                    .cloned();
                Step::from_condition(format!("Revision {r:?}"), ready.as_ref(), "starting")
            }
            None => Step {
                title: "Revision".into(),
                state: State::Waiting,
                message: "waiting to be created".into(),
            },
        };
        let route = Step::from_condition(
            format!("Route {name:?}"),
            conditions("RoutesReady").as_ref(),
            "waiting for the Revision",
        );
        let ingress_ready = match observed {
            true => routes
                .get_opt(name)
                .await?
                .and_then(|r| r.status)
                .and_then(|s| s.status.condition("IngressReady").cloned()),
            false => None,
        };
        let ingress = Step::from_condition(
            "Ingress".into(),
            ingress_ready.as_ref(),
            "waiting for the Route",
        );
        let ready = conditions("Ready");
        view.show(
            &[configuration, revision, route, ingress],
            start.elapsed(),
            tick,
        );
        match ready {
            Some(c) if c.status == "True" => {
                view.finish(start.elapsed(), "Ready to serve.");
                return Ok(svc);
            }
            Some(c) if c.status == "False" => {
                view.finish(start.elapsed(), "Failed.");
                bail!(
                    "service {name:?} is not ready: {}",
                    reason_message(&c).replace('\n', " ")
                );
            }
            _ => {}
        }
        if start.elapsed() >= timeout {
            view.finish(start.elapsed(), "Timed out.");
            bail!(
                "timeout: service '{name}' not ready after {} seconds",
                timeout.as_secs()
            );
        }
        tick += 1;
        tokio::time::sleep(poll_interval(start.elapsed())).await;
    }
}

/// What has been printed so far.
struct View {
    terminal: bool,
    colour: bool,
    lines: usize,
    last: Vec<Step>,
}

impl View {
    fn new(terminal: bool) -> View {
        View {
            terminal,
            colour: terminal && std::env::var_os("NO_COLOR").is_none(),
            lines: 0,
            last: Vec::new(),
        }
    }

    fn show(&mut self, steps: &[Step], elapsed: Duration, tick: usize) {
        let mut out = std::io::stdout().lock();
        for (i, step) in steps.iter().enumerate() {
            if !self.terminal && self.last.get(i) != Some(step) {
                let text = match step.state {
                    State::Done => format!("{} is ready.", step.title),
                    _ => format!("{}: {}", step.title, step.message),
                };
                let _ = writeln!(out, "{:>8.3}s {text}", elapsed.as_secs_f64());
            }
        }
        if self.terminal {
            if self.lines > 0 {
                let _ = write!(out, "\x1b[{}A", self.lines);
            }
            for step in steps {
                let mark = match step.state {
                    State::Waiting => SPINNER[tick % SPINNER.len()].to_string(),
                    State::Done => self.paint("32", "✓"),
                    State::Failed => self.paint("31", "✗"),
                };
                let _ = writeln!(out, "\r\x1b[2K  {mark} {:<28} {}", step.title, step.message);
            }
            self.lines = steps.len();
        }
        let _ = out.flush();
        self.last = steps.to_vec();
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    fn finish(&mut self, elapsed: Duration, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = if self.terminal {
            writeln!(
                out,
                "  {} ({:.2}s)",
                self.paint("1", text),
                elapsed.as_secs_f64()
            )
        } else {
            writeln!(out, "{:>8.3}s {text}", elapsed.as_secs_f64())
        };
        let _ = out.flush();
    }
}
