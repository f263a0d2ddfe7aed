//! Swell's autoscaler: Knative's KPA (§3) — metric windows, the decider, the
//! PodAutoscaler's bounds and scale-to-zero rules, and their spec resolved from
//! `config-autoscaler` and a Revision's annotations (both as `swell-api` parsed them) —
//! the HPA class (Kubernetes' algorithm on CPU and memory), and the trace simulator behind `swell autoscaler simulate`, which runs the very same
//! code. Everything here is pure (time comes in as seconds); the server's tick task
//! lives in `swell-controller`.

pub mod decider;
pub mod hpa;
pub mod kpa;
pub mod scaler;
pub mod simulate;
pub mod spec;
pub mod window;

pub use decider::{Decider, DeciderSpec, Decision};
pub use hpa::{Hpa, HpaSpec, HpaTarget, Usage};
pub use kpa::{Kpa, Tick};
pub use scaler::{Activity, PodAutoscaler, ScalerSpec};
pub use spec::{Spec, SpecError, resolve};
pub use window::Window;
