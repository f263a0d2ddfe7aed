//! What Knative's CustomResourceDefinitions say about each kind: names, short names,
//! categories and printer columns (`config/core/300-resources/*.yaml`).

/// The API group of every Knative Serving resource.
pub const GROUP: &str = "serving.knative.dev";

/// One printer column (`additionalPrinterColumns`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Column title.
    pub name: &'static str,
    /// `string` or `integer`.
    pub type_: &'static str,
    /// The JSONPath, restricted to the forms Knative's CRDs use.
    pub json_path: &'static str,
}

/// A Knative resource as its CRD declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crd {
    /// `services`.
    pub plural: &'static str,
    /// `service`.
    pub singular: &'static str,
    /// `Service`.
    pub kind: &'static str,
    /// `v1`.
    pub version: &'static str,
    /// `ksvc`, `kservice`.
    pub short_names: &'static [&'static str],
    /// `all`, `knative`, `serving`.
    pub categories: &'static [&'static str],
    /// Columns after NAME.
    pub columns: &'static [PrinterColumn],
}

const fn col(name: &'static str, type_: &'static str, json_path: &'static str) -> PrinterColumn {
    PrinterColumn {
        name,
        type_,
        json_path,
    }
}

const READY: PrinterColumn = col(
    "Ready",
    "string",
    ".status.conditions[?(@.type=='Ready')].status",
);
const REASON: PrinterColumn = col(
    "Reason",
    "string",
    ".status.conditions[?(@.type=='Ready')].reason",
);
const URL: PrinterColumn = col("URL", "string", ".status.url");
const LATEST_CREATED: PrinterColumn = col(
    "LatestCreated",
    "string",
    ".status.latestCreatedRevisionName",
);
const LATEST_READY: PrinterColumn = col("LatestReady", "string", ".status.latestReadyRevisionName");
const CATEGORIES: &[&str] = &["all", "knative", "serving"];

/// Every Knative Serving resource Swell serves.
pub const CRDS: &[Crd] = &[
    Crd {
        plural: "services",
        singular: "service",
        kind: "Service",
        version: "v1",
        short_names: &["kservice", "ksvc"],
        categories: CATEGORIES,
        columns: &[URL, LATEST_CREATED, LATEST_READY, READY, REASON],
    },
    Crd {
        plural: "configurations",
        singular: "configuration",
        kind: "Configuration",
        version: "v1",
        short_names: &["config", "cfg"],
        categories: CATEGORIES,
        columns: &[LATEST_CREATED, LATEST_READY, READY, REASON],
    },
    Crd {
        plural: "revisions",
        singular: "revision",
        kind: "Revision",
        version: "v1",
        short_names: &["rev"],
        categories: CATEGORIES,
        columns: &[
            col(
                "Config Name",
                "string",
                ".metadata.labels['serving\\.knative\\.dev/configuration']",
            ),
            col(
                "Generation",
                "string",
                ".metadata.labels['serving\\.knative\\.dev/configurationGeneration']",
            ),
            READY,
            REASON,
            col("Actual Replicas", "integer", ".status.actualReplicas"),
            col("Desired Replicas", "integer", ".status.desiredReplicas"),
        ],
    },
    Crd {
        plural: "routes",
        singular: "route",
        kind: "Route",
        version: "v1",
        short_names: &["rt"],
        categories: CATEGORIES,
        columns: &[URL, READY, REASON],
    },
    Crd {
        plural: "domainmappings",
        singular: "domainmapping",
        kind: "DomainMapping",
        version: "v1beta1",
        short_names: &["dm"],
        categories: CATEGORIES,
        columns: &[URL, READY, REASON],
    },
];

/// The CRD of a plural resource name.
pub fn crd(plural: &str) -> Option<&'static Crd> {
    CRDS.iter().find(|c| c.plural == plural)
}
