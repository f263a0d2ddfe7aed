//! Swell's kubelet: each Revision's replicas as core `v1` Pods in the store, as a
//! Deployment's ReplicaSet and kubelet would have them on Kubernetes — named
//! `<revision>-deployment-<hash>-<suffix>`, with the labels and annotations Knative
//! puts on its pod template, the Revision as owner, and the status kubelet reports
//! (phase, IP, readiness, restarts, last termination). Written when the backend says
//! something changed (coalesced), removed when the replica is gone; a Pod a user
//! deletes has its replica stopped and replaced. Also finds Pods' logs for `pods/log`.

use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use swell_apiserver::pods::{LogSource, PodLogs};
use swell_runtime::{Backend, ReplicaPod, RevisionRef};
use swell_store::{DeleteOptions, ListScope, ObjectKey, Store, StoreError, WriteOptions};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

/// How long changes are gathered before Pods are written.
const COALESCE: Duration = Duration::from_millis(50);

/// How long a Revision whose Pods could not be written waits to be tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Kubernetes' alphabet for generated names (no vowels, no look-alikes).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Revision labels Knative leaves off its Deployments and Pods.
const EXCLUDED_LABELS: [&str; 2] = [
    "serving.knative.dev/route",
    "serving.knative.dev/routingState",
];

/// Revision annotations Knative leaves off its Pods (besides `autoscaling.knative.dev/*`).
const EXCLUDED_ANNOTATIONS: [&str; 4] = [
    "serving.knative.dev/lastPinned",
    "serving.knative.dev/no-gc",
    "serving.knative.dev/routingStateModified",
    "serving.knative.dev/routes",
];

/// One published Pod.
#[derive(Debug)]
struct Entry {
    rev: RevisionRef,
    id: u64,
    /// What was last written (to write only changes).
    written: Value,
}

#[derive(Debug, Default)]
struct Published {
    /// By (namespace, Pod name).
    pods: HashMap<(String, String), Entry>,
    /// Pod names by replica.
    names: HashMap<(RevisionRef, u64), String>,
}

/// Publishes replicas as Pods.
pub struct Pods {
    store: Arc<dyn Store>,
    backend: Arc<dyn Backend>,
    /// The node Pods run on: this machine's name.
    node: String,
    published: Mutex<Published>,
}

impl std::fmt::Debug for Pods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pods")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

fn pods_scope() -> ListScope {
    ListScope {
        group: String::new(),
        resource: "pods".into(),
        namespace: None,
    }
}

fn pod_key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey::new("", "pods", namespace, name)
}

/// An RFC 3339 time with whole seconds, as `metav1.Time`.
fn time(t: SystemTime) -> Value {
    match jiff::Timestamp::try_from(t) {
        Ok(ts) => json!(
            jiff::Timestamp::from_second(ts.as_second())
                .unwrap_or(ts)
                .to_string()
        ),
        Err(_) => Value::Null,
    }
}

/// Kubernetes' `SafeEncodeString` of the decimal FNV-1a hash of `s`: how the
/// `pod-template-hash` of a Deployment's ReplicaSet looks.
fn template_hash(s: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.to_string()
        .bytes()
        .map(|d| ALPHABET[usize::from(d) % ALPHABET.len()] as char)
        .collect()
}

/// Five random characters, as a ReplicaSet names its Pods.
fn suffix() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let mut n = h.finish();
    (0..5)
        .map(|_| {
            let c = ALPHABET[usize::try_from(n % ALPHABET.len() as u64).unwrap_or(0)] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// This machine's name, the Pods' node.
pub fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The container of a replica that ended by itself or failed its probes, and is being
/// started again after a pause.
fn crash_looping(reason: &str) -> bool {
    reason.starts_with("ExitCode")
        || matches!(
            reason,
            "LivenessProbeFailed" | "StartupProbeFailed" | "OOMKilled"
        )
}

/// Kubernetes' QoS class of a pod spec.
fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| spec.get(*f).and_then(Value::as_array))
        .flatten()
        .collect();
    let get =
        |c: &Value, kind: &str, r: &str| c.pointer(&format!("/resources/{kind}/{r}")).cloned();
    let any = containers.iter().any(|c| {
        ["requests", "limits"]
            .iter()
            .any(|k| ["cpu", "memory"].iter().any(|r| get(c, k, r).is_some()))
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = get(c, "limits", r);
            limit.is_some() && get(c, "requests", r).is_none_or(|q| Some(q) == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The condition `type_` with `status`, keeping its transition time when `previous`
/// had the same status.
fn condition(previous: &Value, type_: &str, status: bool, extra: Value) -> Value {
    let status = if status { "True" } else { "False" };
    let old = previous
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_));
    let since = match old {
        Some(c) if c["status"] == status => c["lastTransitionTime"].clone(),
        _ => time(SystemTime::now()),
    };
    let mut c = json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    c
}

/// The Pod of replica `r` of `revision`, named `name`. `previous` is what was written
/// before (for conditions' transition times).
fn pod_object(revision: &Value, r: &ReplicaPod, name: &str, node: &str, previous: &Value) -> Value {
    let meta = &revision["metadata"];
    let rev_name = meta["name"].as_str().unwrap_or_default();
    let uid = meta["uid"].as_str().unwrap_or_default();
    let mut labels: Map<String, Value> = meta["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !EXCLUDED_LABELS.contains(&k.as_str()))
        .collect();
    labels.insert("serving.knative.dev/revision".into(), json!(rev_name));
    labels.insert("serving.knative.dev/revisionUID".into(), json!(uid));
    labels.entry("app").or_insert_with(|| json!(rev_name));
    labels.insert("pod-template-hash".into(), json!(template_hash(uid)));
    let mut annotations: Map<String, Value> = meta["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| {
            !EXCLUDED_ANNOTATIONS.contains(&k.as_str()) && !k.starts_with("autoscaling.knative.dev")
        })
        .collect();
    let serving = r
        .logs
        .first()
        .map(|l| l.container.clone())
        .unwrap_or_else(|| "user-container".into());
    annotations.insert(
        "kubectl.kubernetes.io/default-container".into(),
        json!(serving),
    );

    let mut spec = revision["spec"].clone();
    let timeout = spec["timeoutSeconds"].as_i64().unwrap_or(300);
    if let Some(s) = spec.as_object_mut() {
        for knative_only in [
            "containerConcurrency",
            "timeoutSeconds",
            "responseStartTimeoutSeconds",
            "idleTimeoutSeconds",
        ] {
            s.remove(knative_only);
        }
        s.insert("nodeName".into(), json!(node));
        s.insert("restartPolicy".into(), json!("Always"));
        s.insert("terminationGracePeriodSeconds".into(), json!(timeout));
        s.entry("serviceAccountName").or_insert(json!("default"));
        s.entry("enableServiceLinks").or_insert(json!(false));
    }

    let running = r.started.is_some();
    let phase = if running || r.last_termination.is_some() || r.restarts > 0 {
        "Running"
    } else {
        "Pending"
    };
    let digests: HashMap<&str, &str> = revision
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| Some((c["name"].as_str()?, c["imageDigest"].as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    let last_state = match &r.last_termination {
        Some(t) => json!({"terminated": {
            "exitCode": t.exit_code,
            "reason": t.reason,
            "message": t.message,
            "startedAt": t.started.map_or(Value::Null, time),
            "finishedAt": time(t.finished),
        }}),
        None => json!({}),
    };
    let arr = |field: &str| -> Vec<Value> {
        spec.get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let containers = arr("containers");
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let cname = c["name"].as_str().unwrap_or_default();
            let state = match (&r.started, &r.waiting) {
                (Some(at), _) => json!({"running": {"startedAt": time(*at)}}),
                (None, None) => json!({"waiting": {"reason": "ContainerCreating"}}),
                (None, Some(f)) if crash_looping(&f.reason) => json!({"waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": format!("back-off restarting failed container {cname} in pod {name}"),
                }}),
                (None, Some(f)) => json!({"waiting": {"reason": f.reason, "message": f.message}}),
            };
            let ready = if cname == serving { r.ready } else { running };
            let image = c["image"].clone();
            let image_id = digests
                .get(cname)
                .map_or_else(|| image.clone(), |d| json!(d));
            json!({
                "name": cname,
                "image": image,
                "imageID": image_id,
                "ready": ready,
                "started": running,
                "restartCount": r.restarts,
                "state": state,
                "lastState": last_state,
            })
        })
        .collect();
    let init_statuses: Vec<Value> = arr("initContainers")
        .iter()
        .map(|c| {
            let state = if phase == "Running" {
                json!({"terminated": {"exitCode": 0, "reason": "Completed"}})
            } else {
                json!({"waiting": {"reason": "PodInitializing"}})
            };
            json!({
                "name": c["name"],
                "image": c["image"],
                "imageID": c["image"],
                "ready": phase == "Running",
                "restartCount": 0,
                "state": state,
                "lastState": {},
            })
        })
        .collect();
    let unready: Vec<&str> = statuses
        .iter()
        .filter(|s| s["ready"] != json!(true))
        .filter_map(|s| s["name"].as_str())
        .collect();
    let not_ready = if unready.is_empty() {
        json!({})
    } else {
        json!({"reason": "ContainersNotReady", "message": format!("containers with unready status: [{}]", unready.join(" "))})
    };
    let conditions = vec![
        condition(
            previous,
            "PodReadyToStartContainers",
            phase == "Running",
            json!({}),
        ),
        condition(
            previous,
            "Initialized",
            phase == "Running" || init_statuses.is_empty(),
            json!({}),
        ),
        condition(previous, "Ready", unready.is_empty(), not_ready.clone()),
        condition(previous, "ContainersReady", unready.is_empty(), not_ready),
        condition(previous, "PodScheduled", true, json!({})),
    ];
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "startTime": time(r.created),
        "containerStatuses": statuses,
        "qosClass": qos_class(&spec),
    });
    if !init_statuses.is_empty() {
        status["initContainerStatuses"] = json!(init_statuses);
    }
    if let Some(addr) = r.addr {
        let host: IpAddr = if addr.ip().is_loopback() {
            addr.ip()
        } else {
            IpAddr::V4(swell_runtime::runc::network::GATEWAY)
        };
        status["hostIP"] = json!(host.to_string());
        status["hostIPs"] = json!([{"ip": host.to_string()}]);
        status["podIP"] = json!(addr.ip().to_string());
        status["podIPs"] = json!([{"ip": addr.ip().to_string()}]);
    }
    let hash = template_hash(uid);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": format!("{rev_name}-deployment-{hash}-"),
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Revision",
                "name": rev_name,
                "uid": uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
        "status": status,
    })
}

impl Pods {
    /// A publisher of `backend`'s replicas into `store`, on node `node`.
    pub fn new(store: Arc<dyn Store>, backend: Arc<dyn Backend>, node: String) -> Self {
        Pods {
            store,
            backend,
            node,
            published: Mutex::new(Published::default()),
        }
    }

    fn published(&self) -> std::sync::MutexGuard<'_, Published> {
        self.published.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes until `shutdown`: Revisions whose replicas changed come on `changes`.
    pub async fn run(
        self: Arc<Self>,
        mut changes: UnboundedReceiver<RevisionRef>,
        shutdown: CancellationToken,
    ) {
        let mut watch = self.watch_and_clean().await;
        let mut retry: HashSet<RevisionRef> = HashSet::new();
        loop {
            let mut dirty = HashSet::new();
            tokio::select! {
                () = shutdown.cancelled() => return,
                rev = changes.recv() => match rev {
                    Some(rev) => {
                        dirty.insert(rev);
                        let until = tokio::time::Instant::now() + COALESCE;
                        loop {
                            tokio::select! {
                                () = tokio::time::sleep_until(until) => break,
                                more = changes.recv() => match more {
                                    Some(rev) => { dirty.insert(rev); }
                                    None => break,
                                },
                            }
                        }
                    }
                    None => return,
                },
                () = tokio::time::sleep(RETRY), if !retry.is_empty() => dirty.extend(retry.drain()),
                event = next_event(&mut watch) => match event {
                    Some(Ok(e)) if e.type_ == swell_store::EventType::Deleted => {
                        let key = e.key.clone();
                        tokio::task::block_in_place(|| self.deleted(&key.namespace, &key.name));
                    }
                    Some(Ok(_)) => {}
                    // Behind or closed: start again and take stock.
                    Some(Err(_)) | None => {
                        watch = self.watch_and_clean().await;
                        if watch.is_none() {
                            tokio::time::sleep(RETRY).await;
                        }
                    }
                },
            }
            for rev in dirty {
                if let Err(e) = self.sync(&rev).await {
                    tracing::warn!(revision = %rev.name, error = %e, "cannot publish the Revision's Pods");
                    retry.insert(rev);
                }
            }
        }
    }

    /// Watches Pods, then removes those of no replica (a previous server's) and
    /// replaces the replicas whose Pods are gone.
    async fn watch_and_clean(&self) -> Option<swell_store::Watch> {
        let watch = match self.store.watch(&pods_scope(), None) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch Pods");
                return None;
            }
        };
        let stored = match self.store.list(&pods_scope()) {
            Ok(l) => l.items,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list Pods");
                return Some(watch);
            }
        };
        let mut present = HashSet::new();
        for pod in stored {
            let ns = pod["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let name = pod["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if self
                .published()
                .pods
                .contains_key(&(ns.clone(), name.clone()))
            {
                present.insert((ns, name));
            } else {
                let _ = self
                    .store
                    .delete(&pod_key(&ns, &name), &DeleteOptions::default())
                    .await;
            }
        }
        let gone: Vec<(String, String)> = self
            .published()
            .pods
            .keys()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        for (ns, name) in gone {
            self.deleted(&ns, &name);
        }
        Some(watch)
    }

    /// A Pod left the store: if its replica still runs (a user deleted it), the replica
    /// is replaced, unless its Revision is gone too.
    fn deleted(&self, namespace: &str, name: &str) {
        let entry = {
            let mut p = self.published();
            let entry = p.pods.remove(&(namespace.to_string(), name.to_string()));
            if let Some(e) = &entry {
                p.names.remove(&(e.rev.clone(), e.id));
            }
            entry
        };
        let Some(entry) = entry else {
            return;
        };
        let revision = ObjectKey::new(
            swell_api::GROUP,
            "revisions",
            &entry.rev.namespace,
            &entry.rev.name,
        );
        if matches!(self.store.get(&revision), Ok(Some(_))) {
            tracing::info!(pod = name, revision = %entry.rev.name, replica = entry.id, "Pod deleted; replacing its replica");
            self.backend.replace(&entry.rev, entry.id);
        }
    }

    /// Writes the Pods of `rev`'s replicas as they are now and removes the others.
    async fn sync(&self, rev: &RevisionRef) -> Result<(), StoreError> {
        let replicas = self.backend.pods(rev);
        let revision = self.store.get(&ObjectKey::new(
            swell_api::GROUP,
            "revisions",
            &rev.namespace,
            &rev.name,
        ))?;
        let live: HashSet<u64> = match &revision {
            Some(_) => replicas.iter().map(|r| r.id).collect(),
            None => HashSet::new(),
        };
        let gone: Vec<(u64, String)> = {
            let mut p = self.published();
            let gone: Vec<(u64, String)> = p
                .names
                .iter()
                .filter(|((r, id), _)| r == rev && !live.contains(id))
                .map(|((_, id), name)| (*id, name.clone()))
                .collect();
            for (id, name) in &gone {
                p.names.remove(&(rev.clone(), *id));
                p.pods.remove(&(rev.namespace.clone(), name.clone()));
            }
            gone
        };
        for (_, name) in gone {
            match self
                .store
                .delete(&pod_key(&rev.namespace, &name), &DeleteOptions::default())
                .await
            {
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let Some(revision) = revision else {
            return Ok(());
        };
        let uid = revision["metadata"]["uid"].as_str().unwrap_or_default();
        for r in &replicas {
            let (name, previous) = {
                let p = self.published();
                match p.names.get(&(rev.clone(), r.id)) {
                    Some(n) => (
                        n.clone(),
                        p.pods
                            .get(&(rev.namespace.clone(), n.clone()))
                            .map(|e| e.written.clone()),
                    ),
                    None => (
                        format!(
                            "{}-deployment-{}-{}",
                            rev.name,
                            template_hash(uid),
                            suffix()
                        ),
                        None,
                    ),
                }
            };
            let desired = pod_object(
                &revision,
                r,
                &name,
                &self.node,
                previous.as_ref().unwrap_or(&Value::Null),
            );
            if previous.as_ref() == Some(&desired) {
                continue;
            }
            let key = pod_key(&rev.namespace, &name);
            let opts = WriteOptions::default();
            let written = match previous {
                None => self.store.create(&key, desired.clone(), &opts).await,
                Some(_) => self.store.update(&key, desired.clone(), &opts).await,
            };
            match written {
                Ok(_) => {
                    let mut p = self.published();
                    p.names.insert((rev.clone(), r.id), name.clone());
                    p.pods.insert(
                        (rev.namespace.clone(), name),
                        Entry {
                            rev: rev.clone(),
                            id: r.id,
                            written: desired,
                        },
                    );
                }
                // Deleted under us: as if the watch had said so.
                Err(StoreError::NotFound(_)) => self.deleted(&rev.namespace, &name),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

async fn next_event(
    watch: &mut Option<swell_store::Watch>,
) -> Option<swell_store::Result<Arc<swell_store::WatchEvent>>> {
    match watch {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

impl PodLogs for Pods {
    fn open(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<LogSource, String> {
        let found = self
            .published()
            .pods
            .get(&(namespace.to_string(), pod.to_string()))
            .map(|e| (e.rev.clone(), e.id));
        let not_running = || format!("pod {pod:?} has no running replica");
        let (rev, id) = found.ok_or_else(not_running)?;
        let replica = self
            .backend
            .pods(&rev)
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(not_running)?;
        let log = replica
            .logs
            .iter()
            .find(|l| l.container == container)
            .ok_or_else(|| format!("container {container} is not valid for pod {pod}"))?;
        if previous {
            let start = log.previous.ok_or_else(|| {
                format!("previous terminated container {container:?} in pod {pod:?} not found")
            })?;
            return Ok(LogSource {
                path: log.path.clone(),
                start,
                end: Some(log.start),
                running: Box::new(|| false),
            });
        }
        if replica.started.is_none() && replica.last_termination.is_none() {
            let reason = replica
                .waiting
                .as_ref()
                .map_or("ContainerCreating", |w| w.reason.as_str());
            return Err(format!(
                "container {container:?} in pod {pod:?} is waiting to start: {reason}"
            ));
        }
        let (backend, restarts, started) =
            (self.backend.clone(), replica.restarts, replica.started);
        Ok(LogSource {
            path: log.path.clone(),
            start: log.start,
            end: None,
            running: Box::new(move || {
                started.is_some()
                    && backend
                        .pods(&rev)
                        .iter()
                        .any(|r| r.id == id && r.restarts == restarts && r.started.is_some())
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swell_runtime::{ContainerLog, Failure, Termination};

    fn revision() -> Value {
        json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
            "metadata": {
                "name": "hello-00001", "namespace": "default", "uid": "u-1",
                "labels": {
                    "serving.knative.dev/service": "hello",
                    "serving.knative.dev/configuration": "hello",
                    "serving.knative.dev/routingState": "active",
                },
                "annotations": {"autoscaling.knative.dev/min-scale": "1", "team": "a"},
            },
            "spec": {"containerConcurrency": 0, "timeoutSeconds": 30,
                     "containers": [{"name": "user-container", "image": "x"}]},
            "status": {"containerStatuses": [{"name": "user-container", "imageDigest": "x@sha256:1"}]},
        })
    }

    fn replica() -> ReplicaPod {
        ReplicaPod {
            id: 1,
            created: SystemTime::UNIX_EPOCH,
            addr: Some("10.86.0.5:8080".parse().unwrap()),
            ready: false,
            started: None,
            restarts: 2,
            waiting: Some(Failure::failed("ExitCode1", "boom")),
            last_termination: Some(Termination {
                exit_code: 1,
                reason: "Error".into(),
                message: "boom".into(),
                started: None,
                finished: SystemTime::UNIX_EPOCH,
            }),
            logs: vec![ContainerLog {
                container: "user-container".into(),
                path: "/x/1.log".into(),
                start: 0,
                previous: None,
            }],
        }
    }

    #[test]
    fn pods_carry_knatives_labels_and_the_replicas_state() {
        let pod = pod_object(&revision(), &replica(), "p", "node", &Value::Null);
        let labels = &pod["metadata"]["labels"];
        assert_eq!(labels["serving.knative.dev/revision"], "hello-00001");
        assert_eq!(labels["serving.knative.dev/revisionUID"], "u-1");
        assert_eq!(labels["serving.knative.dev/service"], "hello");
        assert_eq!(labels["app"], "hello-00001");
        assert!(labels.get("serving.knative.dev/routingState").is_none());
        let ann = &pod["metadata"]["annotations"];
        assert!(ann.get("autoscaling.knative.dev/min-scale").is_none());
        assert_eq!(ann["team"], "a");
        assert_eq!(
            ann["kubectl.kubernetes.io/default-container"],
            "user-container"
        );
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert!(pod["spec"].get("containerConcurrency").is_none());
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
        let status = &pod["status"];
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["podIP"], "10.86.0.5");
        let c = &status["containerStatuses"][0];
        assert_eq!(c["restartCount"], 2);
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(c["imageID"], "x@sha256:1");
        // Unchanged status keeps its transition times.
        let again = pod_object(&revision(), &replica(), "p", "node", &pod);
        assert_eq!(again, pod);
    }

    #[test]
    fn hashes_and_suffixes_are_dns_safe() {
        let h = template_hash("some-uid");
        assert!(!h.is_empty() && h.bytes().all(|b| ALPHABET.contains(&b)));
        let s = suffix();
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| ALPHABET.contains(&b)));
    }
}
