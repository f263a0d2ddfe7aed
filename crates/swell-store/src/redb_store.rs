//! [`Store`] on redb: one table of objects, an index of owners, and the event log.

use crate::error::{Result, StoreError};
use crate::gc;
use crate::key::{ListScope, ObjectKey};
use crate::meta::{meta_str, metadata_mut, now, owner_uids};
use crate::watch::{EventType, Watch, WatchEvent};
use crate::writer::{self, Done, Pending, Writer};
use crate::{DeleteOptions, Deleted, Store, WriteOptions};
use redb::{
    Database, MultimapTableDefinition, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    TableDefinition, WriteTransaction,
};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::broadcast;

/// encoded key → object JSON.
const OBJECTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("objects");
/// resourceVersion → `{type, key, object}` JSON, the last `event_log_len` changes.
const EVENTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("events");
/// `rv` (newest resourceVersion), `compacted` (newest dropped from the event log).
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// uid → encoded key, for finding owners.
const UIDS: TableDefinition<'_, &str, &str> = TableDefinition::new("uids");
/// owner uid → encoded keys of its dependents.
const DEPENDENTS: MultimapTableDefinition<'_, &str, &str> =
    MultimapTableDefinition::new("dependents");

/// Tunables of the store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// How many changes the event log keeps for watches to replay.
    pub event_log_len: u64,
    /// How many live events a slow watcher may fall behind before it is cut off.
    pub watch_buffer: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            event_log_len: 10_000,
            watch_buffer: 16_384,
        }
    }
}

/// The redb-backed store. Reads run on the caller's thread and never block; writes go
/// to the writer thread ([`crate::writer`]), which serialises them (that is also what
/// makes resourceVersions strictly increasing) and commits them in groups.
pub struct RedbStore {
    pub(crate) writer: Writer,
    shared: Arc<Shared>,
}

/// What the callers' threads and the writer thread share.
pub(crate) struct Shared {
    pub(crate) db: Database,
    pub(crate) events: broadcast::Sender<Arc<WatchEvent>>,
    pub(crate) config: StoreConfig,
    /// Transactions committed since the store was opened.
    pub(crate) commits: AtomicU64,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens (or creates) the database file at `path` and starts its writer thread.
    pub fn open(path: &Path, config: StoreConfig) -> Result<Self> {
        let db = Database::create(path)?;
        let tx = db.begin_write()?;
        {
            tx.open_table(OBJECTS)?;
            tx.open_table(EVENTS)?;
            tx.open_table(META)?;
            tx.open_table(UIDS)?;
            tx.open_multimap_table(DEPENDENTS)?;
        }
        tx.commit()?;
        let (events, _) = broadcast::channel(config.watch_buffer);
        let shared = Arc::new(Shared {
            db,
            events,
            config,
            commits: AtomicU64::new(0),
        });
        let writer =
            Writer::start(Arc::clone(&shared)).map_err(|e| StoreError::Storage(e.into()))?;
        Ok(Self { writer, shared })
    }

    /// How many transactions (each one fsync) the writer has committed since the store
    /// was opened; with concurrent writers it is less than the number of writes.
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }
}

fn decode(bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(StoreError::Corrupt)
}

fn encode(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serde_json::Value always serialises")
}

fn rv_of(obj: &Value) -> u64 {
    meta_str(obj, "resourceVersion")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

impl Store for RedbStore {
    fn get(&self, key: &ObjectKey) -> Result<Option<Value>> {
        let tx = self.shared.db.begin_read()?;
        let table = tx.open_table(OBJECTS)?;
        table
            .get(key.encode().as_str())?
            .map(|v| decode(v.value()))
            .transpose()
    }

    fn scan_bytes(
        &self,
        scope: &ListScope,
        start_after: Option<&ObjectKey>,
        visit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<u64> {
        let tx = self.shared.db.begin_read()?;
        let table = tx.open_table(OBJECTS)?;
        let rv = tx.open_table(META)?.get("rv")?.map_or(0, |v| v.value());
        let prefix = scope.prefix();
        let after = start_after.map(ObjectKey::encode);
        let range = match &after {
            Some(a) if a.as_str() >= prefix.as_str() => {
                table.range::<&str>((Bound::Excluded(a.as_str()), Bound::Unbounded))?
            }
            _ => table.range::<&str>(prefix.as_str()..)?,
        };
        for entry in range {
            let (k, v) = entry?;
            if !k.value().starts_with(&prefix) {
                break;
            }
            if !visit(v.value()) {
                break;
            }
        }
        Ok(rv)
    }

    fn create(&self, key: &ObjectKey, mut object: Value, opts: &WriteOptions) -> Pending<Value> {
        let Some(meta) = metadata_mut(&mut object) else {
            return Pending::failed(StoreError::Invalid("not an object".into()));
        };
        for f in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "generation",
        ] {
            meta.remove(f);
        }
        meta.insert("name".into(), json!(key.name));
        if key.namespace.is_empty() {
            meta.remove("namespace");
        } else {
            meta.insert("namespace".into(), json!(key.namespace));
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now()));
        if opts.track_generation {
            meta.insert("generation".into(), json!(1));
        }
        let key = key.clone();
        let op = move |txn: &mut Txn<'_>| {
            if txn.get(&key)?.is_some() {
                return Err(StoreError::AlreadyExists(Box::new(key.clone())));
            }
            txn.put(&key, object.clone(), EventType::Added)
                .map(Done::Object)
        };
        self.writer
            .submit(opts.dry_run, Box::new(op), writer::object)
    }

    fn update(&self, key: &ObjectKey, object: Value, opts: &WriteOptions) -> Pending<Value> {
        let key = key.clone();
        let track_generation = opts.track_generation;
        let op = move |txn: &mut Txn<'_>| {
            let key = &key;
            let mut object = object.clone();
            let old = txn
                .get(key)?
                .ok_or_else(|| StoreError::NotFound(Box::new(key.clone())))?;
            let current = rv_of(&old);
            if let Some(given) = meta_str(&object, "resourceVersion").filter(|s| !s.is_empty())
                && given.parse::<u64>().ok() != Some(current)
            {
                return Err(StoreError::Conflict {
                    key: Box::new(key.clone()),
                    expected: given.into(),
                    actual: current,
                });
            }
            if let Some(uid) = meta_str(&object, "uid").filter(|s| !s.is_empty())
                && Some(uid) != meta_str(&old, "uid")
            {
                return Err(StoreError::Precondition {
                    key: Box::new(key.clone()),
                    message: format!("uid {uid} does not match the stored object"),
                });
            }
            let generation = old.pointer("/metadata/generation").and_then(Value::as_i64);
            let meta = metadata_mut(&mut object)
                .ok_or_else(|| StoreError::Invalid("not an object".into()))?;
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "name",
                "namespace",
            ] {
                match old["metadata"].get(f) {
                    Some(v) => meta.insert(f.into(), v.clone()),
                    None => meta.remove(f),
                };
            }
            meta.insert("resourceVersion".into(), json!(current.to_string()));
            meta.remove("generation");
            if track_generation {
                let bump = i64::from(old.get("spec") != object.get("spec"));
                let g = generation.unwrap_or(1) + bump;
                metadata_mut(&mut object)
                    .expect("checked above")
                    .insert("generation".into(), json!(g));
            }
            if object == old {
                return Ok(Done::Object(old));
            }
            let deleting = object.pointer("/metadata/deletionTimestamp").is_some();
            if deleting && crate::meta::finalizers(&object).is_empty() {
                return gc::remove(txn, key, object, crate::Propagation::Background)
                    .map(|gone| Done::Deleted(Deleted::Gone(gone)));
            }
            txn.put(key, object, EventType::Modified).map(Done::Object)
        };
        self.writer
            .submit(opts.dry_run, Box::new(op), writer::object)
    }

    fn delete(&self, key: &ObjectKey, opts: &DeleteOptions) -> Pending<Deleted> {
        let key = key.clone();
        let dry_run = opts.dry_run;
        let opts = opts.clone();
        let op = move |txn: &mut Txn<'_>| {
            let key = &key;
            let obj = txn
                .get(key)?
                .ok_or_else(|| StoreError::NotFound(Box::new(key.clone())))?;
            if let Some(uid) = &opts.uid
                && Some(uid.as_str()) != meta_str(&obj, "uid")
            {
                return Err(StoreError::Precondition {
                    key: Box::new(key.clone()),
                    message: format!("uid {uid} does not match the stored object"),
                });
            }
            if let Some(rv) = opts.resource_version
                && rv != rv_of(&obj)
            {
                return Err(StoreError::Conflict {
                    key: Box::new(key.clone()),
                    expected: rv.to_string(),
                    actual: rv_of(&obj),
                });
            }
            gc::delete(txn, key, opts.propagation).map(Done::Deleted)
        };
        self.writer.submit(dry_run, Box::new(op), writer::deleted)
    }

    fn watch(&self, scope: &ListScope, from: Option<u64>) -> Result<Watch> {
        // Subscribe before reading the log, so nothing committed in between is missed;
        // `Watch::next` drops the duplicates by resourceVersion.
        let live = self.shared.events.subscribe();
        let tx = self.shared.db.begin_read()?;
        let meta = tx.open_table(META)?;
        let rv = meta.get("rv")?.map_or(0, |v| v.value());
        let compacted = meta.get("compacted")?.map_or(0, |v| v.value());
        let Some(from) = from else {
            return Ok(Watch {
                scope: scope.clone(),
                replay: VecDeque::new(),
                live,
                last: rv,
            });
        };
        if from < compacted {
            return Err(StoreError::Expired {
                requested: from,
                oldest: compacted,
            });
        }
        let mut replay = VecDeque::new();
        let events = tx.open_table(EVENTS)?;
        for entry in events.range(from + 1..)? {
            let (_, v) = entry?;
            let e = decode_event(&decode(v.value())?)?;
            if scope.contains(&e.key) {
                replay.push_back(Arc::new(e));
            }
        }
        Ok(Watch {
            scope: scope.clone(),
            replay,
            live,
            last: from,
        })
    }

    fn resource_version(&self) -> Result<u64> {
        let tx = self.shared.db.begin_read()?;
        Ok(tx.open_table(META)?.get("rv")?.map_or(0, |v| v.value()))
    }
}

fn decode_event(v: &Value) -> Result<WatchEvent> {
    let bad = || StoreError::Invalid("malformed event in the log".into());
    Ok(WatchEvent {
        resource_version: v["rv"].as_u64().ok_or_else(bad)?,
        type_: EventType::parse(v["type"].as_str().ok_or_else(bad)?).ok_or_else(bad)?,
        key: ObjectKey::decode(v["key"].as_str().ok_or_else(bad)?).ok_or_else(bad)?,
        object: v["object"].clone(),
    })
}

/// One write transaction with the store's tables open, collecting the events it emits.
pub(crate) struct Txn<'t> {
    objects: redb::Table<'t, &'static str, &'static [u8]>,
    events: redb::Table<'t, u64, &'static [u8]>,
    meta: redb::Table<'t, &'static str, u64>,
    uids: redb::Table<'t, &'static str, &'static str>,
    dependents: redb::MultimapTable<'t, &'static str, &'static str>,
    rv: u64,
    log_len: u64,
    pub(crate) emitted: Vec<WatchEvent>,
}

impl<'t> Txn<'t> {
    pub(crate) fn open(tx: &'t WriteTransaction, log_len: u64) -> Result<Self> {
        let meta = tx.open_table(META)?;
        let rv = meta.get("rv")?.map_or(0, |v| v.value());
        Ok(Self {
            objects: tx.open_table(OBJECTS)?,
            events: tx.open_table(EVENTS)?,
            meta,
            uids: tx.open_table(UIDS)?,
            dependents: tx.open_multimap_table(DEPENDENTS)?,
            rv,
            log_len,
            emitted: Vec::new(),
        })
    }

    pub(crate) fn get(&self, key: &ObjectKey) -> Result<Option<Value>> {
        self.objects
            .get(key.encode().as_str())?
            .map(|v| decode(v.value()))
            .transpose()
    }

    pub(crate) fn key_of_uid(&self, uid: &str) -> Result<Option<ObjectKey>> {
        Ok(self
            .uids
            .get(uid)?
            .and_then(|k| ObjectKey::decode(k.value())))
    }

    pub(crate) fn dependents_of(&self, uid: &str) -> Result<Vec<ObjectKey>> {
        let mut out = Vec::new();
        for k in self.dependents.get(uid)? {
            if let Some(key) = ObjectKey::decode(k?.value()) {
                out.push(key);
            }
        }
        Ok(out)
    }

    /// Keys of every object in a namespace.
    pub(crate) fn keys_in_namespace(&self, namespace: &str) -> Result<Vec<ObjectKey>> {
        let mut out = Vec::new();
        for entry in self.objects.iter()? {
            let (k, _) = entry?;
            if let Some(key) = ObjectKey::decode(k.value())
                && key.namespace == namespace
            {
                out.push(key);
            }
        }
        Ok(out)
    }

    fn record(&mut self, type_: EventType, key: &ObjectKey, object: &Value) -> Result<()> {
        let event =
            json!({"rv": self.rv, "type": type_.as_str(), "key": key.encode(), "object": object});
        self.events.insert(self.rv, encode(&event).as_slice())?;
        self.emitted.push(WatchEvent {
            resource_version: self.rv,
            type_,
            key: key.clone(),
            object: object.clone(),
        });
        Ok(())
    }

    fn reindex(&mut self, key: &ObjectKey, old: Option<&Value>, new: Option<&Value>) -> Result<()> {
        let encoded = key.encode();
        if let Some(old) = old {
            for owner in owner_uids(old) {
                self.dependents.remove(owner.as_str(), encoded.as_str())?;
            }
            if let Some(uid) = meta_str(old, "uid") {
                self.uids.remove(uid)?;
            }
        }
        if let Some(new) = new {
            for owner in owner_uids(new) {
                self.dependents.insert(owner.as_str(), encoded.as_str())?;
            }
            if let Some(uid) = meta_str(new, "uid") {
                self.uids.insert(uid, encoded.as_str())?;
            }
        }
        Ok(())
    }

    /// Writes `object` under a new resourceVersion and records the event.
    pub(crate) fn put(
        &mut self,
        key: &ObjectKey,
        mut object: Value,
        type_: EventType,
    ) -> Result<Value> {
        self.rv += 1;
        metadata_mut(&mut object)
            .ok_or_else(|| StoreError::Invalid("not an object".into()))?
            .insert("resourceVersion".into(), json!(self.rv.to_string()));
        let old = self.get(key)?;
        self.reindex(key, old.as_ref(), Some(&object))?;
        self.objects
            .insert(key.encode().as_str(), encode(&object).as_slice())?;
        self.record(type_, key, &object)?;
        Ok(object)
    }

    /// Removes the object and records a DELETED event carrying its last state.
    pub(crate) fn remove_object(&mut self, key: &ObjectKey, mut object: Value) -> Result<Value> {
        self.rv += 1;
        if let Some(meta) = metadata_mut(&mut object) {
            meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        }
        let old = self.get(key)?;
        self.reindex(key, old.as_ref(), None)?;
        self.objects.remove(key.encode().as_str())?;
        self.record(EventType::Deleted, key, &object)?;
        Ok(object)
    }

    /// The newest resourceVersion written so far (each change takes the next one).
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    /// Saves the resourceVersion and trims the event log to its bound.
    pub(crate) fn finish(&mut self) -> Result<()> {
        self.meta.insert("rv", self.rv)?;
        let mut compacted = self.meta.get("compacted")?.map_or(0, |v| v.value());
        while self.rv.saturating_sub(compacted) > self.log_len {
            compacted += 1;
            self.events.remove(compacted)?;
        }
        self.meta.insert("compacted", compacted)?;
        Ok(())
    }
}
