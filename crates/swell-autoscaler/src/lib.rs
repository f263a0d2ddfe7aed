//! Swell's autoscaler: Knative's KPA (§3) — metric windows, the decider and the
//! configuration it runs with — and the trace simulator behind
//! `swell autoscaler simulate`, which runs the very same code.

pub mod decider;
pub mod simulate;
pub mod spec;
pub mod window;

pub use decider::{Decider, DeciderSpec, Decision};
pub use spec::{AutoscalerConfig, Spec, resolve};
pub use window::{Algorithm, Window};
