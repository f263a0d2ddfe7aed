//! Pods: a Revision's replicas as Kubernetes shows them. Swell writes them (as kubelet
//! and the ReplicaSet controller would); users read, watch and delete them. Here:
//! the refusal of every other write, kubectl's pod columns, and the `pods/log`
//! subresource, streamed from a replica's log file.

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::table::age;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use swell_store::ObjectKey;

/// How often a followed log is checked for more output.
const FOLLOW_PERIOD: Duration = Duration::from_millis(100);

/// The bytes one read of a log hands on.
const CHUNK: usize = 64 * 1024;

/// Where the output of one container of a Pod is.
pub struct LogSource {
    /// The log file.
    pub path: PathBuf,
    /// Where the asked-for run's output starts.
    pub start: u64,
    /// Where it ends, when that run is over (`previous`).
    pub end: Option<u64>,
    /// Whether the run being read still goes on (a follow ends when it does not).
    pub running: Box<dyn Fn() -> bool + Send + Sync>,
}

impl std::fmt::Debug for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSource")
            .field("path", &self.path)
            .field("start", &self.start)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

/// Finds the logs of Pods' containers (what kubelet answers for `pods/log`).
pub trait PodLogs: Send + Sync + 'static {
    /// The output of `container` of Pod `namespace/pod`: its current (or last) run, or
    /// with `previous` the run before. `Err` says why there is none, for people.
    fn open(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<LogSource, String>;
}

impl std::fmt::Debug for dyn PodLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PodLogs")
    }
}

/// The answer to a create, update or patch of a Pod.
pub(crate) fn read_only(name: &str) -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        format!(
            "pods {name:?}: Pods are the replicas Swell runs for Revisions and cannot be created or changed; change the Service (or Configuration) instead, or delete a Pod to have its replica replaced"
        ),
    )
}

fn column(name: &str, format: &str, priority: u8, description: &str) -> Value {
    json!({"name": name, "type": "string", "format": format, "description": description, "priority": priority})
}

/// kubectl's pod columns (the last four only with `-o wide`).
pub(crate) fn columns() -> Vec<Value> {
    vec![
        column(
            "Name",
            "name",
            0,
            "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        ),
        column(
            "Ready",
            "",
            0,
            "The aggregate readiness state of this pod for accepting traffic.",
        ),
        column(
            "Status",
            "",
            0,
            "The aggregate status of the containers in this pod.",
        ),
        column(
            "Restarts",
            "",
            0,
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        column(
            "Age",
            "",
            0,
            "CreationTimestamp is a timestamp representing the server time when this object was created.",
        ),
        column("IP", "", 1, "IP address allocated to the pod."),
        column("Node", "", 1, "Name of the node assigned to the pod."),
        column(
            "Nominated Node",
            "",
            1,
            "Name of the node nominated by the scheduler to schedule the pod on.",
        ),
        column("Readiness Gates", "", 1, "The readiness gates of the pod."),
    ]
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// One row's cells, as kubectl's pod printer computes them.
pub(crate) fn cells(pod: &Value) -> Vec<Value> {
    let status = &pod["status"];
    let mut reason = str_at(status, "/reason")
        .or_else(|| str_at(status, "/phase"))
        .unwrap_or("")
        .to_string();
    let empty = Vec::new();
    let arr = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let containers = pod.pointer("/spec/containers").map(arr).unwrap_or(empty);
    let mut restarts = 0;
    let mut ready = 0;
    let mut last_restart: Option<String> = None;
    let mut initializing = false;
    let inits = arr(&status["initContainerStatuses"]);
    let init_total = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    for (i, c) in inits.iter().enumerate() {
        let state = &c["state"];
        if state["terminated"]["exitCode"].as_i64() == Some(0) {
            continue;
        }
        if let Some(r) = str_at(state, "/terminated/reason") {
            reason = format!("Init:{r}");
        } else if state.get("terminated").is_some() {
            reason = format!(
                "Init:ExitCode:{}",
                state["terminated"]["exitCode"].as_i64().unwrap_or(0)
            );
        } else if let Some(r) = str_at(state, "/waiting/reason").filter(|r| *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else {
            reason = format!("Init:{i}/{init_total}");
        }
        initializing = true;
        break;
    }
    if !initializing {
        let mut has_running = false;
        for c in arr(&status["containerStatuses"]).iter().rev() {
            restarts += c["restartCount"].as_i64().unwrap_or(0);
            if let Some(f) = str_at(c, "/lastState/terminated/finishedAt")
                && last_restart.as_deref().is_none_or(|l| l < f)
            {
                last_restart = Some(f.to_string());
            }
            let state = &c["state"];
            if let Some(r) = str_at(state, "/waiting/reason") {
                reason = r.to_string();
            } else if let Some(r) = str_at(state, "/terminated/reason") {
                reason = r.to_string();
            } else if state.get("terminated").is_some() {
                reason = format!(
                    "ExitCode:{}",
                    state["terminated"]["exitCode"].as_i64().unwrap_or(0)
                );
            } else if c["ready"] == json!(true) && state.get("running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    let restarts = match (restarts, last_restart) {
        (0, _) | (_, None) => restarts.to_string(),
        (n, Some(at)) => format!("{n} ({} ago)", age(Some(&at))),
    };
    let or_none = |s: Option<&str>| json!(s.unwrap_or("<none>"));
    vec![
        pod.pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null),
        json!(format!("{ready}/{}", containers.len())),
        json!(reason),
        json!(restarts),
        json!(age(str_at(pod, "/metadata/creationTimestamp"))),
        or_none(str_at(status, "/podIPs/0/ip").or_else(|| str_at(status, "/podIP"))),
        or_none(str_at(pod, "/spec/nodeName")),
        or_none(str_at(status, "/nominatedNodeName")),
        json!("<none>"),
    ]
}

/// The query of a `pods/log` request.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogParams {
    container: Option<String>,
    follow: Option<String>,
    previous: Option<String>,
    tail_lines: Option<i64>,
    limit_bytes: Option<i64>,
}

fn flag(v: Option<&str>) -> bool {
    matches!(v, Some("true" | "1"))
}

/// The container a log request reads: the one named, else the Pod's only one.
fn pick_container(pod: &Value, name: &str, asked: Option<&str>) -> ApiResult<String> {
    let names = |field: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (containers, inits) = (names("containers"), names("initContainers"));
    match asked.filter(|c| !c.is_empty()) {
        Some(c) if containers.iter().chain(&inits).any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => {
            let mut message = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !inits.is_empty() {
                message.push_str(&format!(
                    " or one of the init containers: [{}]",
                    inits.join(" ")
                ));
            }
            Err(ApiError::bad_request(message))
        }
    }
}

/// Where the last `n` lines of `path` between `start` and `end` begin.
fn tail_start(path: &std::path::Path, start: u64, end: u64, n: u64) -> std::io::Result<u64> {
    if n == 0 {
        return Ok(end);
    }
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut pos = end;
    let mut seen = 0;
    while pos > start {
        let len = usize::try_from((pos - start).min(CHUNK as u64)).unwrap_or(CHUNK);
        pos -= len as u64;
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut buf[..len])?;
        for i in (0..len).rev() {
            let at = pos + i as u64;
            // A newline ends a line; the one ending the last line starts nothing.
            if buf[i] == b'\n' && at + 1 != end {
                seen += 1;
                if seen == n {
                    return Ok(at + 1);
                }
            }
        }
    }
    Ok(start)
}

/// What a log stream has still to do.
struct Reading {
    file: std::fs::File,
    pos: u64,
    /// Where to stop (a previous run's end, or `limitBytes`).
    end: Option<u64>,
    follow: bool,
    running: Box<dyn Fn() -> bool + Send + Sync>,
    shutdown: tokio_util::sync::CancellationToken,
    /// The run ended: one last read, then the end.
    last: bool,
}

impl Reading {
    /// The next bytes up to `end`, empty at the file's end.
    fn read(&mut self) -> std::io::Result<Vec<u8>> {
        let want = match self.end {
            Some(end) => usize::try_from(end.saturating_sub(self.pos))
                .unwrap_or(CHUNK)
                .min(CHUNK),
            None => CHUNK,
        };
        let mut buf = vec![0u8; want];
        self.file.seek(SeekFrom::Start(self.pos))?;
        let n = self.file.read(&mut buf)?;
        buf.truncate(n);
        self.pos += n as u64;
        Ok(buf)
    }

    /// The next chunk of the stream, `None` at its end.
    async fn next(mut self) -> Option<(Result<bytes::Bytes, std::io::Error>, Self)> {
        loop {
            if self.end.is_some_and(|e| self.pos >= e) {
                return None;
            }
            match self.read() {
                // The error ends the stream.
                Err(e) => {
                    let pos = self.pos;
                    return Some((
                        Err(e),
                        Reading {
                            end: Some(pos),
                            ..self
                        },
                    ));
                }
                Ok(b) if !b.is_empty() => return Some((Ok(b.into()), self)),
                Ok(_) if !self.follow || self.last => return None,
                Ok(_) => {}
            }
            if !(self.running)() {
                self.last = true;
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(FOLLOW_PERIOD) => {}
                () = self.shutdown.cancelled() => return None,
            }
        }
    }
}

/// `GET /api/v1/namespaces/NS/pods/NAME/log`: a container's output, as text;
/// `follow` keeps the answer open, streaming what the container writes until its run
/// ends or the client goes away.
pub(crate) async fn log(
    state: &Arc<ApiState>,
    namespace: &str,
    name: &str,
    query: Option<&str>,
) -> ApiResult<Response> {
    let params: LogParams = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {e}")))?;
    let res = crate::registry()
        .find("", "v1", "pods")
        .ok_or_else(ApiError::no_route)?;
    let pod = state
        .store
        .get(&ObjectKey::new("", "pods", namespace, name))
        .map_err(|e| ApiError::from_store(e, res, name))?
        .ok_or_else(|| ApiError::not_found(res, name))?;
    let container = pick_container(&pod, name, params.container.as_deref())?;
    let logs = state
        .pod_logs()
        .ok_or_else(|| ApiError::bad_request("this server runs no replicas, so no logs"))?;
    let previous = flag(params.previous.as_deref());
    let source = logs
        .open(namespace, name, &container, previous)
        .map_err(ApiError::bad_request)?;
    let file_len = std::fs::metadata(&source.path).map_or(0, |m| m.len());
    let end = source
        .end
        .unwrap_or(file_len)
        .min(file_len.max(source.start));
    let mut start = source.start.min(end);
    if let Some(n) = params.tail_lines.filter(|n| *n >= 0) {
        start = tail_start(&source.path, start, end, n.unsigned_abs())
            .map_err(|e| ApiError::internal(format!("cannot read the log: {e}")))?;
    }
    let follow = flag(params.follow.as_deref()) && !previous;
    let mut stop = if follow { source.end } else { Some(end) };
    if let Some(limit) = params.limit_bytes.filter(|l| *l > 0) {
        let cap = start.saturating_add(limit.unsigned_abs());
        stop = Some(stop.map_or(cap, |s| s.min(cap)));
    }
    let file = match std::fs::File::open(&source.path) {
        Ok(f) => f,
        // Nothing written yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !follow => {
            return Ok(text(Body::empty()));
        }
        Err(e) => return Err(ApiError::internal(format!("cannot read the log: {e}"))),
    };
    let reading = Reading {
        file,
        pos: start,
        end: stop,
        follow,
        running: source.running,
        shutdown: state.shutdown.clone(),
        last: false,
    };
    let stream = futures::stream::unfold(reading, Reading::next);
    Ok(text(Body::from_stream(stream)))
}

fn text(body: Body) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_count_lines_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        let tail = |start, n| tail_start(&path, start, 6, n).unwrap();
        assert_eq!(tail(0, 1), 4);
        assert_eq!(tail(0, 2), 2);
        assert_eq!(tail(0, 3), 0);
        assert_eq!(tail(0, 9), 0);
        assert_eq!(tail(0, 0), 6);
        assert_eq!(tail(2, 9), 2);
    }

    #[test]
    fn cells_like_kubectl() {
        let pod = json!({
            "metadata": {"name": "p", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "user-container"}], "nodeName": "n"},
            "status": {"phase": "Running", "podIP": "10.0.0.2", "containerStatuses": [{
                "name": "user-container", "ready": true, "restartCount": 2,
                "state": {"running": {"startedAt": "2020-01-01T00:00:00Z"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2020-01-01T00:00:00Z"}}
            }]}
        });
        let c = cells(&pod);
        assert_eq!(c[1], json!("1/1"));
        assert_eq!(c[2], json!("Running"));
        assert!(c[3].as_str().unwrap().starts_with("2 ("), "{c:?}");
        assert_eq!(c[5], json!("10.0.0.2"));
        assert_eq!(c[6], json!("n"));
        let mut waiting = pod.clone();
        waiting["status"]["containerStatuses"][0]["ready"] = json!(false);
        waiting["status"]["containerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "CrashLoopBackOff"}});
        let c = cells(&waiting);
        assert_eq!((&c[1], &c[2]), (&json!("0/1"), &json!("CrashLoopBackOff")));
    }

    #[test]
    fn the_container_is_named_or_the_only_one() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        assert_eq!(pick_container(&pod, "p", Some("b")).unwrap(), "b");
        assert_eq!(pick_container(&pod, "p", Some("i")).unwrap(), "i");
        let e = pick_container(&pod, "p", None).unwrap_err();
        assert!(e.message.contains("choose one of: [a b]"), "{}", e.message);
        assert!(pick_container(&pod, "p", Some("x")).is_err());
        let one = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(pick_container(&one, "p", None).unwrap(), "a");
    }
}
