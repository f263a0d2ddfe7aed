//! Prometheus metrics of the data plane, per Revision: requests by response class,
//! latency, cold starts, requests in flight and queued. Rendered as OpenMetrics text for `/metrics`.

use crate::pool::{RevisionKey, Revisions};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    namespace: String,
    revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    namespace: String,
    revision: String,
    response_code_class: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~55 min.
    Histogram::new(exponential_buckets(0.0001, 2.0, 25))
}

/// The metric families.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RevisionLabels, Histogram, fn() -> Histogram>,
    cold_starts: Family<RevisionLabels, Histogram, fn() -> Histogram>,
    in_flight: Family<RevisionLabels, Gauge>,
    queued: Family<RevisionLabels, Gauge>,
    replicas: Family<RevisionLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("swell");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RevisionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let cold_starts =
            Family::<RevisionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram as fn() -> Histogram,
            );
        let in_flight = Family::<RevisionLabels, Gauge>::default();
        let queued = Family::<RevisionLabels, Gauge>::default();
        let replicas = Family::<RevisionLabels, Gauge>::default();
        registry.register(
            "revision_requests",
            "Requests answered for a Revision, by response code class",
            requests.clone(),
        );
        registry.register(
            "revision_request_latency_seconds",
            "Time from a request's arrival to the end of its response",
            latency.clone(),
        );
        registry.register(
            "revision_cold_start_seconds",
            "Time requests that found no replica waited for the first one",
            cold_starts.clone(),
        );
        registry.register(
            "revision_requests_in_flight",
            "Requests queued for or being served by a Revision",
            in_flight.clone(),
        );
        registry.register(
            "revision_queue_depth",
            "Requests waiting for a replica of a Revision",
            queued.clone(),
        );
        registry.register(
            "revision_ready_replicas",
            "Replicas of a Revision the data plane sends requests to",
            replicas.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            cold_starts,
            in_flight,
            queued,
            replicas,
        }
    }
}

/// One Revision's handles, looked up once.
#[derive(Clone, Debug)]
pub struct RevisionMetrics {
    by_class: [Counter; 5],
    latency: Histogram,
    cold_start: Histogram,
}

impl RevisionMetrics {
    /// Records one finished request.
    pub fn observe(&self, status: u16, seconds: f64) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.by_class[class].inc();
        self.latency.observe(seconds);
    }

    /// Records how long a request waited for a Revision's first replica.
    pub fn cold_start(&self, seconds: f64) {
        self.cold_start.observe(seconds);
    }
}

impl Metrics {
    fn labels(key: &RevisionKey) -> RevisionLabels {
        RevisionLabels {
            namespace: key.namespace.clone(),
            revision: key.name.clone(),
        }
    }

    fn request_labels(key: &RevisionKey, class: usize) -> RequestLabels {
        RequestLabels {
            namespace: key.namespace.clone(),
            revision: key.name.clone(),
            response_code_class: format!("{}xx", class + 1),
        }
    }

    /// A Revision's handles.
    pub fn revision(&self, key: &RevisionKey) -> RevisionMetrics {
        RevisionMetrics {
            by_class: std::array::from_fn(|c| {
                self.requests
                    .get_or_create(&Self::request_labels(key, c))
                    .clone()
            }),
            latency: self.latency.get_or_create(&Self::labels(key)).clone(),
            cold_start: self.cold_starts.get_or_create(&Self::labels(key)).clone(),
        }
    }

    /// Drops a Revision's series.
    pub fn forget(&self, key: &RevisionKey) {
        for c in 0..5 {
            self.requests.remove(&Self::request_labels(key, c));
        }
        self.latency.remove(&Self::labels(key));
        self.cold_starts.remove(&Self::labels(key));
    }

    /// The OpenMetrics text, with the gauges read from the pools now.
    pub fn render(&self, revisions: &Revisions) -> String {
        self.in_flight.clear();
        self.queued.clear();
        self.replicas.clear();
        for pool in revisions.all() {
            let l = Self::labels(&pool.key);
            let gauge = |f: &Family<RevisionLabels, Gauge>, v: usize| {
                f.get_or_create(&l)
                    .set(i64::try_from(v).unwrap_or(i64::MAX));
            };
            gauge(
                &self.in_flight,
                usize::try_from(pool.in_flight()).unwrap_or(usize::MAX),
            );
            gauge(&self.queued, pool.queued());
            gauge(&self.replicas, pool.replicas().len());
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}
