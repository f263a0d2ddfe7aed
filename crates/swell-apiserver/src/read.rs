//! Reads: get, list (selectors, paging, Tables) and watch (chunked JSON events).

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::request::{Params, Target, json_response, table_response};
use crate::selector::{FieldSelector, LabelSelector};
use crate::table::{IncludeObject, table};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::Stream;
use http::{StatusCode, header};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use swell_store::{ListScope, ObjectKey, Watch};

/// How often a watch with `allowWatchBookmarks` gets a BOOKMARK.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

/// The selectors of a list or watch.
struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn new(params: &Params, plural: &str) -> ApiResult<Self> {
        Ok(Self {
            labels: LabelSelector::parse(params.label_selector.as_deref().unwrap_or(""))?,
            fields: FieldSelector::parse(params.field_selector.as_deref().unwrap_or(""), plural)?,
        })
    }

    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    fn selects_all(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

fn scope(t: &Target<'_>) -> ListScope {
    ListScope {
        group: t.res.group.into(),
        resource: t.res.plural.into(),
        namespace: t.namespace.clone(),
    }
}

/// GET of one object (or its status).
pub async fn get(
    state: &Arc<ApiState>,
    t: &Target<'_>,
    name: &str,
    as_table: bool,
) -> ApiResult<Response> {
    let key = ObjectKey::new(
        t.res.group,
        t.res.plural,
        t.namespace.as_deref().unwrap_or(""),
        name,
    );
    let obj = state
        .store
        .get(&key)
        .map_err(|e| ApiError::from_store(e, t.res, name))?
        .ok_or_else(|| ApiError::not_found(t.res, name))?;
    if as_table {
        let rv = obj
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        return Ok(table_response(&table(
            t.res,
            &[obj],
            json!({"resourceVersion": rv}),
            IncludeObject::Metadata,
        )));
    }
    Ok(json_response(StatusCode::OK, &obj, &[]))
}

/// GET of a collection: a List (or Table), filtered and paged.
pub async fn list(
    state: &Arc<ApiState>,
    t: &Target<'_>,
    params: &Params,
    as_table: bool,
) -> ApiResult<Response> {
    let filter = Filter::new(params, t.res.plural)?;
    let (listed_at, after) = match params.continue_.as_deref().filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, key) = decode_continue(t, token)?;
            (Some(rv), Some(key))
        }
        None => (None, None),
    };
    let limit = params.limit.filter(|l| *l > 0);
    if filter.selects_all() && limit.is_none() && !as_table {
        return list_stored(state, t, params, listed_at, after.as_ref());
    }
    let mut items = Vec::new();
    let mut more = false;
    let rv = state
        .store
        .scan_where(
            &scope(t),
            after.as_ref(),
            &|stored| filter.labels.may_match(stored),
            &mut |o| {
                if !filter.matches(&o) {
                    return true;
                }
                if limit.is_some_and(|l| items.len() >= l) {
                    more = true;
                    return false;
                }
                items.push(o);
                true
            },
        )
        .map_err(|e| ApiError::from_store(e, t.res, ""))?;
    let rv = listed_at.unwrap_or(rv);
    check_exact(params, rv)?;
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if more {
        let last = items.last().expect("a full page has a last item");
        meta["continue"] = json!(format!("{rv}/{}/{}", namespace_of(last), name_of(last)));
    }
    if as_table {
        let include = IncludeObject::parse(params.include_object.as_deref());
        return Ok(table_response(&table(t.res, &items, meta, include)));
    }
    let body = json!({"apiVersion": t.res.api_version(), "kind": format!("{}List", t.res.kind), "metadata": meta, "items": items});
    Ok(json_response(StatusCode::OK, &body, &[]))
}

/// A whole collection with no selector: the stored JSON of each object, copied into the
/// List as it is, with no decoding and re-encoding.
fn list_stored(
    state: &ApiState,
    t: &Target<'_>,
    params: &Params,
    listed_at: Option<u64>,
    after: Option<&ObjectKey>,
) -> ApiResult<Response> {
    let mut items = Vec::with_capacity(64 * 1024);
    let mut first = true;
    let rv = state
        .store
        .scan_bytes(&scope(t), after, &mut |object| {
            if !std::mem::take(&mut first) {
                items.push(b',');
            }
            items.extend_from_slice(object);
            true
        })
        .map_err(|e| ApiError::from_store(e, t.res, ""))?;
    let rv = listed_at.unwrap_or(rv);
    check_exact(params, rv)?;
    let head = json!({"apiVersion": t.res.api_version(), "kind": format!("{}List", t.res.kind), "metadata": {"resourceVersion": rv.to_string()}});
    let mut body = serde_json::to_vec(&head).unwrap_or_default();
    // `{…}` becomes `{…,"items":[…]}`.
    body.pop();
    body.extend_from_slice(br#","items":["#);
    body.extend_from_slice(&items);
    body.extend_from_slice(b"]}");
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// `resourceVersionMatch=Exact` is served only for the resourceVersion the list read at.
fn check_exact(params: &Params, rv: u64) -> ApiResult<()> {
    if params.resource_version_match.as_deref() == Some("Exact")
        && params
            .resource_version
            .as_deref()
            .and_then(|r| r.parse::<u64>().ok())
            != Some(rv)
    {
        return Err(ApiError::expired(
            "resourceVersionMatch=Exact is only served for the current resourceVersion",
        ));
    }
    Ok(())
}

fn namespace_of(o: &Value) -> &str {
    o.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn name_of(o: &Value) -> &str {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A continue token is `RV/namespace/name`: the resourceVersion the first page was
/// read at and the last object of the previous page. Every page of a list answers
/// with the first page's resourceVersion. Each page is read afresh, so an object
/// written during a paged list may be missed by the pages; a watch from that
/// resourceVersion (what informers do next) replays every change made since the first
/// page, so nothing is lost. Answering with a later page's resourceVersion would skip
/// those changes for good.
fn decode_continue(t: &Target<'_>, token: &str) -> ApiResult<(u64, ObjectKey)> {
    let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let (rv, rest) = token.split_once('/').ok_or_else(bad)?;
    let rv = rv.parse().map_err(|_| bad())?;
    let (ns, name) = rest.split_once('/').ok_or_else(bad)?;
    Ok((rv, ObjectKey::new(t.res.group, t.res.plural, ns, name)))
}

/// One event of a watch stream, as JSON text plus newline.
fn event_line(type_: &str, object: &Value) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// What a watch stream still has to do.
struct WatchState {
    state: Arc<ApiState>,
    res: &'static crate::registry::ResourceDef,
    filter: Filter,
    as_table: bool,
    initial: std::vec::IntoIter<Bytes>,
    watch: Option<Watch>,
    bookmarks: Option<tokio::time::Interval>,
    deadline: Option<tokio::time::Instant>,
    done: bool,
}

impl WatchState {
    fn render(&self, type_: &str, obj: &Value) -> Bytes {
        if self.as_table {
            event_line(
                type_,
                &table(
                    self.res,
                    std::slice::from_ref(obj),
                    json!({}),
                    IncludeObject::Metadata,
                ),
            )
        } else {
            event_line(type_, obj)
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        event_line(
            "BOOKMARK",
            &json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": meta}),
        )
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if let Some(b) = self.initial.next() {
            return Some(b);
        }
        let watch = self.watch.as_mut()?;
        loop {
            let deadline = self.deadline;
            let timeout = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let tick = async {
                match self.bookmarks.as_mut() {
                    Some(i) => i.tick().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.state.shutdown.cancelled() => return None,
                () = timeout => return None,
                _ = tick => {
                    let rv = watch.last_resource_version();
                    return Some(self.bookmark(rv, false));
                }
                event = watch.next() => match event {
                    None => return None,
                    Some(Err(e)) => {
                        self.done = true;
                        let status = ApiError::expired(format!("watch ended: {e}; re-list and watch again")).to_status();
                        return Some(event_line("ERROR", &status));
                    }
                    Some(Ok(e)) => {
                        if self.filter.matches(&e.object) {
                            return Some(self.render(e.type_.as_str(), &e.object));
                        }
                    }
                },
            }
        }
    }
}

/// `?watch=true`: a chunked stream of `{type, object}` lines.
pub async fn watch(
    state: &Arc<ApiState>,
    t: &Target<'static>,
    params: &Params,
    as_table: bool,
) -> ApiResult<Response> {
    let filter = Filter::new(params, t.res.plural)?;
    let send_initial = params.send_initial_events == Some(true);
    if params.send_initial_events.is_some()
        && (params.resource_version_match.as_deref() != Some("NotOlderThan")
            || params.allow_watch_bookmarks != Some(true))
    {
        return Err(ApiError::invalid(t.res, "", vec![("sendInitialEvents".into(), "Forbidden: sendInitialEvents requires resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true".into())]));
    }
    let from = params
        .resource_version
        .as_deref()
        .filter(|r| !r.is_empty() && *r != "0");
    let mut ws = WatchState {
        state: state.clone(),
        res: t.res,
        filter,
        as_table,
        initial: Vec::new().into_iter(),
        watch: None,
        bookmarks: params.allow_watch_bookmarks.filter(|b| *b).map(|_| {
            let mut i = tokio::time::interval_at(
                tokio::time::Instant::now() + BOOKMARK_INTERVAL,
                BOOKMARK_INTERVAL,
            );
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        }),
        deadline: params
            .timeout_seconds
            .filter(|s| *s > 0)
            .map(|s| tokio::time::Instant::now() + Duration::from_secs(s)),
        done: false,
    };
    let store_scope = scope(t);
    let start = match from {
        Some(rv) if !send_initial => rv
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        _ => {
            // Synthetic ADDED for what exists now, then changes after that snapshot.
            let list = state
                .store
                .list(&store_scope)
                .map_err(|e| ApiError::from_store(e, t.res, ""))?;
            let mut initial: Vec<Bytes> = list
                .items
                .iter()
                .filter(|o| ws.filter.matches(o))
                .map(|o| ws.render("ADDED", o))
                .collect();
            if send_initial {
                initial.push(ws.bookmark(list.resource_version, true));
            }
            ws.initial = initial.into_iter();
            list.resource_version
        }
    };
    match state.store.watch(&store_scope, Some(start)) {
        Ok(w) => ws.watch = Some(w),
        Err(swell_store::StoreError::Expired { requested, oldest }) => {
            let status =
                ApiError::expired(format!("too old resource version: {requested} ({oldest})"))
                    .to_status();
            ws.initial = vec![event_line("ERROR", &status)].into_iter();
        }
        Err(e) => return Err(ApiError::from_store(e, t.res, "")),
    }
    let content_type = if as_table {
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    } else {
        "application/json"
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream(ws)))
        .map_err(|e| ApiError::internal(e.to_string()))
}

fn stream(ws: WatchState) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> {
    futures::stream::unfold(ws, |mut ws| async move {
        ws.next_chunk().await.map(|b| (Ok(b), ws))
    })
}
