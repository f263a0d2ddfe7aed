//! Deletion: finalizers, `deletionTimestamp`, and ownerReference garbage collection with
//! Background, Foreground and Orphan propagation — all inside the caller's transaction,
//! so a cascade is as atomic as a single write.

use crate::error::{Result, StoreError};
use crate::key::ObjectKey;
use crate::meta::{finalizers, meta_str, metadata_mut, now, owner_uids, set_finalizers};
use crate::redb_store::Txn;
use crate::watch::EventType;
use crate::{Deleted, Propagation};
use serde_json::{Value, json};

/// Finalizer that holds an owner deleted with Foreground propagation.
pub const FOREGROUND_DELETION: &str = "foregroundDeletion";

/// Deletes `key`: marks it if finalizers (or Foreground dependents) hold it, otherwise
/// removes it and propagates to its dependents.
pub(crate) fn delete(
    txn: &mut Txn<'_>,
    key: &ObjectKey,
    propagation: Propagation,
) -> Result<Deleted> {
    let mut obj = txn
        .get(key)?
        .ok_or_else(|| StoreError::NotFound(Box::new(key.clone())))?;
    let uid = meta_str(&obj, "uid").unwrap_or_default().to_string();
    let mut fins = finalizers(&obj);
    if propagation == Propagation::Foreground && !txn.dependents_of(&uid)?.is_empty() {
        if !fins.iter().any(|f| f == FOREGROUND_DELETION) {
            fins.push(FOREGROUND_DELETION.into());
        }
        set_finalizers(&mut obj, &fins);
        mark_deleting(&mut obj);
        let marked = txn.put(key, obj, EventType::Modified)?;
        for dep in txn.dependents_of(&uid)? {
            if txn.get(&dep)?.is_some() {
                delete(txn, &dep, Propagation::Foreground)?;
            }
        }
        // Removing the last dependent may already have completed the owner's deletion.
        return match txn.get(key)? {
            None => Ok(Deleted::Gone(marked)),
            Some(_) => finish_foreground(txn, key),
        };
    }
    if !fins.is_empty() {
        if obj.pointer("/metadata/deletionTimestamp").is_none() {
            mark_deleting(&mut obj);
            obj = txn.put(key, obj, EventType::Modified)?;
        }
        return Ok(Deleted::Pending(obj));
    }
    remove(txn, key, obj, propagation).map(Deleted::Gone)
}

fn mark_deleting(obj: &mut Value) {
    if let Some(meta) = metadata_mut(obj)
        && !meta.contains_key("deletionTimestamp")
    {
        meta.insert("deletionTimestamp".into(), json!(now()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    }
}

/// Removes an object for good, then deals with its dependents and with owners waiting
/// for it under Foreground deletion.
pub(crate) fn remove(
    txn: &mut Txn<'_>,
    key: &ObjectKey,
    obj: Value,
    propagation: Propagation,
) -> Result<Value> {
    let uid = meta_str(&obj, "uid").unwrap_or_default().to_string();
    let owners = owner_uids(&obj);
    let gone = txn.remove_object(key, obj)?;
    for dep in txn.dependents_of(&uid)? {
        let Some(mut dep_obj) = txn.get(&dep)? else {
            continue;
        };
        let other_owner_alive = owner_uids(&dep_obj)
            .iter()
            .filter(|o| **o != uid)
            .try_fold(false, |alive, o| {
                Ok::<_, StoreError>(alive || txn.key_of_uid(o)?.is_some())
            })?;
        if propagation == Propagation::Orphan || other_owner_alive {
            strip_owner(&mut dep_obj, &uid);
            txn.put(&dep, dep_obj, EventType::Modified)?;
        } else {
            delete(txn, &dep, Propagation::Background)?;
        }
    }
    if key.group.is_empty() && key.resource == "namespaces" {
        for k in txn.keys_in_namespace(&key.name)? {
            if txn.get(&k)?.is_some() {
                delete(txn, &k, Propagation::Background)?;
            }
        }
    }
    for owner in owners {
        if let Some(owner_key) = txn.key_of_uid(&owner)? {
            finish_foreground(txn, &owner_key)?;
        }
    }
    Ok(gone)
}

/// Completes a Foreground deletion once the owner has no dependents left.
fn finish_foreground(txn: &mut Txn<'_>, key: &ObjectKey) -> Result<Deleted> {
    let Some(mut obj) = txn.get(key)? else {
        return Err(StoreError::NotFound(Box::new(key.clone())));
    };
    let mut fins = finalizers(&obj);
    let waiting = fins.iter().any(|f| f == FOREGROUND_DELETION);
    let uid = meta_str(&obj, "uid").unwrap_or_default().to_string();
    if !waiting || !txn.dependents_of(&uid)?.is_empty() {
        return Ok(Deleted::Pending(obj));
    }
    fins.retain(|f| f != FOREGROUND_DELETION);
    set_finalizers(&mut obj, &fins);
    if fins.is_empty() {
        remove(txn, key, obj, Propagation::Background).map(Deleted::Gone)
    } else {
        txn.put(key, obj, EventType::Modified).map(Deleted::Pending)
    }
}

fn strip_owner(obj: &mut Value, uid: &str) {
    if let Some(refs) = obj
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    {
        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
        if refs.is_empty()
            && let Some(meta) = metadata_mut(obj)
        {
            meta.remove("ownerReferences");
        }
    }
}
