//! The store's Kubernetes semantics, against a real redb file.

use serde_json::{Value, json};
use std::time::Duration;
use swell_store::{
    DeleteOptions, Deleted, EventType, ListScope, ObjectKey, Propagation, RedbStore, Store,
    StoreConfig, StoreError, WriteOptions,
};

const G: &str = "serving.knative.dev";

fn open(dir: &tempfile::TempDir) -> RedbStore {
    RedbStore::open(&dir.path().join("swell.redb"), StoreConfig::default()).unwrap()
}

fn key(resource: &str, name: &str) -> ObjectKey {
    ObjectKey::new(G, resource, "default", name)
}

fn tracked() -> WriteOptions {
    WriteOptions {
        track_generation: true,
        ..Default::default()
    }
}

fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn owned_by(owner: &Value, name: &str) -> Value {
    json!({"metadata": {"name": name, "ownerReferences": [{
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true}]}, "spec": {}})
}

#[test]
fn create_assigns_server_fields_and_rvs_increase() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = store
        .create(
            &key("services", "a"),
            json!({"metadata": {"resourceVersion": "99"}, "spec": {"x": 1}}),
            &tracked(),
        )
        .wait()
        .unwrap();
    let b = store
        .create(&key("routes", "b"), json!({"spec": {}}), &tracked())
        .wait()
        .unwrap();
    assert_eq!(a["metadata"]["name"], "a");
    assert_eq!(a["metadata"]["namespace"], "default");
    assert_eq!(a["metadata"]["generation"], 1);
    assert_eq!(a["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert!(
        a["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(rv(&b) > rv(&a));
    assert_eq!(store.resource_version().unwrap(), rv(&b));
    let err = store
        .create(&key("services", "a"), json!({}), &tracked())
        .wait()
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
}

#[test]
fn updates_check_resource_version_and_bump_generation_on_spec_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let k = key("services", "a");
    let v1 = store
        .create(&k, json!({"spec": {"x": 1}}), &tracked())
        .wait()
        .unwrap();

    let mut labelled = v1.clone();
    labelled["metadata"]["labels"] = json!({"team": "a"});
    let v2 = store.update(&k, labelled, &tracked()).wait().unwrap();
    assert_eq!(
        v2["metadata"]["generation"], 1,
        "metadata edits keep the generation"
    );
    assert!(rv(&v2) > rv(&v1));

    let mut stale = v1.clone();
    stale["spec"]["x"] = json!(2);
    let err = store.update(&k, stale, &tracked()).wait().unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");

    let mut changed = v2.clone();
    changed["spec"]["x"] = json!(2);
    changed["metadata"]["uid"] = Value::Null;
    changed["metadata"]["creationTimestamp"] = json!("1999-01-01T00:00:00Z");
    let v3 = store.update(&k, changed, &tracked()).wait().unwrap();
    assert_eq!(v3["metadata"]["generation"], 2);
    assert_eq!(v3["metadata"]["uid"], v1["metadata"]["uid"], "uid is kept");
    assert_eq!(
        v3["metadata"]["creationTimestamp"],
        v1["metadata"]["creationTimestamp"]
    );

    let same = store.update(&k, v3.clone(), &tracked()).wait().unwrap();
    assert_eq!(rv(&same), rv(&v3), "a no-op update writes nothing");
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let k = key("services", "a");
    store
        .create(
            &k,
            json!({"metadata": {"finalizers": ["test/hold"]}}),
            &tracked(),
        )
        .wait()
        .unwrap();
    let Deleted::Pending(marked) = store.delete(&k, &DeleteOptions::default()).wait().unwrap()
    else {
        panic!("finalizer should hold the object")
    };
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let mut released = marked.clone();
    released["metadata"]["finalizers"] = json!([]);
    store.update(&k, released, &tracked()).wait().unwrap();
    assert_eq!(store.get(&k).unwrap(), None);
}

#[test]
fn background_deletion_removes_dependents_transitively() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let svc = store
        .create(&key("services", "hello"), json!({}), &tracked())
        .wait()
        .unwrap();
    let cfg = store
        .create(
            &key("configurations", "hello"),
            owned_by(&svc, "hello"),
            &tracked(),
        )
        .wait()
        .unwrap();
    store
        .create(&key("routes", "hello"), owned_by(&svc, "hello"), &tracked())
        .wait()
        .unwrap();
    store
        .create(
            &key("revisions", "hello-00001"),
            owned_by(&cfg, "hello-00001"),
            &tracked(),
        )
        .wait()
        .unwrap();
    let other = store
        .create(&key("services", "other"), json!({}), &tracked())
        .wait()
        .unwrap();
    store
        .create(
            &key("routes", "other"),
            owned_by(&other, "other"),
            &tracked(),
        )
        .wait()
        .unwrap();

    assert!(matches!(
        store
            .delete(&key("services", "hello"), &DeleteOptions::default())
            .wait()
            .unwrap(),
        Deleted::Gone(_)
    ));
    for (r, n) in [
        ("configurations", "hello"),
        ("routes", "hello"),
        ("revisions", "hello-00001"),
    ] {
        assert_eq!(
            store.get(&key(r, n)).unwrap(),
            None,
            "{r}/{n} should be collected"
        );
    }
    assert!(
        store.get(&key("routes", "other")).unwrap().is_some(),
        "other owners' children stay"
    );
}

#[test]
fn orphan_deletion_keeps_dependents_without_the_owner_reference() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let svc = store
        .create(&key("services", "hello"), json!({}), &tracked())
        .wait()
        .unwrap();
    store
        .create(&key("routes", "hello"), owned_by(&svc, "hello"), &tracked())
        .wait()
        .unwrap();
    let opts = DeleteOptions {
        propagation: Propagation::Orphan,
        ..Default::default()
    };
    store
        .delete(&key("services", "hello"), &opts)
        .wait()
        .unwrap();
    let route = store.get(&key("routes", "hello")).unwrap().unwrap();
    assert!(route["metadata"].get("ownerReferences").is_none());
}

#[test]
fn foreground_deletion_waits_for_dependents() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let svc = store
        .create(&key("services", "hello"), json!({}), &tracked())
        .wait()
        .unwrap();
    let mut held = owned_by(&svc, "hello");
    held["metadata"]["finalizers"] = json!(["test/hold"]);
    store
        .create(&key("routes", "hello"), held, &tracked())
        .wait()
        .unwrap();
    store
        .create(
            &key("configurations", "hello"),
            owned_by(&svc, "hello"),
            &tracked(),
        )
        .wait()
        .unwrap();

    let opts = DeleteOptions {
        propagation: Propagation::Foreground,
        ..Default::default()
    };
    let Deleted::Pending(owner) = store
        .delete(&key("services", "hello"), &opts)
        .wait()
        .unwrap()
    else {
        panic!("owner must wait for its dependents")
    };
    assert_eq!(
        owner["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    assert_eq!(store.get(&key("configurations", "hello")).unwrap(), None);

    let mut route = store.get(&key("routes", "hello")).unwrap().unwrap();
    route["metadata"]["finalizers"] = json!([]);
    store
        .update(&key("routes", "hello"), route, &tracked())
        .wait()
        .unwrap();
    assert_eq!(store.get(&key("routes", "hello")).unwrap(), None);
    assert_eq!(
        store.get(&key("services", "hello")).unwrap(),
        None,
        "owner goes with its last dependent"
    );
}

#[test]
fn foreground_deletion_without_finalizers_completes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let svc = store
        .create(&key("services", "hello"), json!({}), &tracked())
        .wait()
        .unwrap();
    store
        .create(&key("routes", "hello"), owned_by(&svc, "hello"), &tracked())
        .wait()
        .unwrap();
    let opts = DeleteOptions {
        propagation: Propagation::Foreground,
        ..Default::default()
    };
    assert!(matches!(
        store
            .delete(&key("services", "hello"), &opts)
            .wait()
            .unwrap(),
        Deleted::Gone(_)
    ));
    assert_eq!(store.get(&key("routes", "hello")).unwrap(), None);
    assert_eq!(store.get(&key("services", "hello")).unwrap(), None);
}

#[test]
fn a_dependent_with_another_live_owner_survives() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = store
        .create(&key("services", "a"), json!({}), &tracked())
        .wait()
        .unwrap();
    let b = store
        .create(&key("services", "b"), json!({}), &tracked())
        .wait()
        .unwrap();
    let mut shared = owned_by(&a, "shared");
    let second = owned_by(&b, "shared")["metadata"]["ownerReferences"][0].clone();
    shared["metadata"]["ownerReferences"]
        .as_array_mut()
        .unwrap()
        .push(second);
    store
        .create(&key("routes", "shared"), shared, &tracked())
        .wait()
        .unwrap();
    store
        .delete(&key("services", "a"), &DeleteOptions::default())
        .wait()
        .unwrap();
    let left = store.get(&key("routes", "shared")).unwrap().unwrap();
    assert_eq!(
        left["metadata"]["ownerReferences"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    store
        .delete(&key("services", "b"), &DeleteOptions::default())
        .wait()
        .unwrap();
    assert_eq!(store.get(&key("routes", "shared")).unwrap(), None);
}

#[test]
fn deleting_a_namespace_deletes_its_contents() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let ns = ObjectKey::new("", "namespaces", "", "team");
    store
        .create(&ns, json!({}), &WriteOptions::default())
        .wait()
        .unwrap();
    let inside = ObjectKey::new(G, "services", "team", "a");
    store.create(&inside, json!({}), &tracked()).wait().unwrap();
    store
        .create(&key("services", "outside"), json!({}), &tracked())
        .wait()
        .unwrap();
    store.delete(&ns, &DeleteOptions::default()).wait().unwrap();
    assert_eq!(store.get(&inside).unwrap(), None);
    assert!(store.get(&key("services", "outside")).unwrap().is_some());
}

#[test]
fn dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let before = store.resource_version().unwrap();
    let dry = WriteOptions {
        dry_run: true,
        track_generation: true,
    };
    let out = store
        .create(&key("services", "a"), json!({}), &dry)
        .wait()
        .unwrap();
    assert_eq!(out["metadata"]["name"], "a");
    assert_eq!(store.get(&key("services", "a")).unwrap(), None);
    store
        .create(&key("services", "a"), json!({}), &tracked())
        .wait()
        .unwrap();
    let opts = DeleteOptions {
        dry_run: true,
        ..Default::default()
    };
    store.delete(&key("services", "a"), &opts).wait().unwrap();
    assert!(store.get(&key("services", "a")).unwrap().is_some());
    assert_eq!(store.resource_version().unwrap(), before + 1);
}

#[tokio::test]
async fn watch_replays_then_follows_in_scope() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let first = store
        .create(&key("services", "a"), json!({}), &tracked())
        .await
        .unwrap();
    store
        .create(&key("routes", "a"), json!({}), &tracked())
        .await
        .unwrap();
    let b = store
        .create(&key("services", "b"), json!({}), &tracked())
        .await
        .unwrap();

    let mut w = store
        .watch(&ListScope::all(G, "services"), Some(rv(&first)))
        .unwrap();
    let e = w.next().await.unwrap().unwrap();
    assert_eq!(
        (e.type_, e.key.name.as_str(), e.resource_version),
        (EventType::Added, "b", rv(&b))
    );

    store
        .delete(&key("routes", "a"), &DeleteOptions::default())
        .await
        .unwrap();
    store
        .delete(&key("services", "a"), &DeleteOptions::default())
        .await
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((e.type_, e.key.name.as_str()), (EventType::Deleted, "a"));
    assert_eq!(
        e.object["metadata"]["resourceVersion"],
        e.resource_version.to_string()
    );
}

#[tokio::test]
async fn watch_from_a_compacted_version_is_expired() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        event_log_len: 5,
        ..Default::default()
    };
    let store = RedbStore::open(&dir.path().join("s.redb"), config).unwrap();
    for i in 0..20 {
        store
            .create(&key("services", &format!("s{i}")), json!({}), &tracked())
            .await
            .unwrap();
    }
    let err = store
        .watch(&ListScope::all(G, "services"), Some(3))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Expired {
                requested: 3,
                oldest: 15
            }
        ),
        "{err}"
    );
    let mut ok = store
        .watch(&ListScope::all(G, "services"), Some(16))
        .unwrap();
    assert_eq!(ok.next().await.unwrap().unwrap().resource_version, 17);
}

#[test]
fn scans_resume_after_a_key_and_stop_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for ns in ["a", "b"] {
        for name in ["x", "y"] {
            store
                .create(
                    &ObjectKey::new(G, "services", ns, name),
                    json!({}),
                    &tracked(),
                )
                .wait()
                .unwrap();
        }
    }
    store
        .create(
            &ObjectKey::new(G, "routes", "a", "x"),
            json!({}),
            &tracked(),
        )
        .wait()
        .unwrap();
    let mut seen = Vec::new();
    let after = ObjectKey::new(G, "services", "a", "y");
    store
        .scan(&ListScope::all(G, "services"), Some(&after), &mut |o| {
            seen.push(format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            ));
            seen.is_empty()
        })
        .unwrap();
    assert_eq!(seen, ["b/x"]);
    let all = store.list(&ListScope::all(G, "services")).unwrap();
    assert_eq!(all.items.len(), 4, "other resources are not in scope");
}

#[test]
fn state_and_resource_versions_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let last = {
        let store = open(&dir);
        store
            .create(&key("services", "a"), json!({"spec": {"x": 1}}), &tracked())
            .wait()
            .unwrap();
        store.resource_version().unwrap()
    };
    let store = open(&dir);
    assert_eq!(
        store.get(&key("services", "a")).unwrap().unwrap()["spec"]["x"],
        1
    );
    let next = store
        .create(&key("services", "b"), json!({}), &tracked())
        .wait()
        .unwrap();
    assert!(rv(&next) > last);
    let list = store
        .list(&ListScope::namespaced(G, "services", "default"))
        .unwrap();
    assert_eq!(list.items.len(), 2);
    assert_eq!(list.resource_version, rv(&next));
}
