//! `TrafficTarget`: one entry of a Route's (or Service's) traffic block.

use serde::{Deserialize, Serialize};

/// Where a share of a Route's traffic goes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficTarget {
    /// Optional tag; the target also gets its own URL `<tag>-<route>…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A fixed Revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_name: Option<String>,
    /// The latest ready Revision of this Configuration (Route spec only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_name: Option<String>,
    /// True when the target follows the latest ready Revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<bool>,
    /// Share of traffic, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,
    /// The tag's URL (status only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}
