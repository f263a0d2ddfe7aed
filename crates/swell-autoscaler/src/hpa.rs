//! The `hpa.autoscaling.knative.dev` class: Kubernetes' HorizontalPodAutoscaler
//! algorithm on the backend's CPU and memory readings, with Knative's mapping of the
//! annotations (CPU: `target` is a utilization percentage of the container's CPU
//! request, 80 % when absent; memory: `target` is MiB per replica). Defaults are
//! Kubernetes': 10 % tolerance, scale-up by at most max(4, 100 %) per 15 s, scale-down
//! stabilized over 5 minutes. Never to zero. Pure: time is seconds.

use std::collections::{HashMap, VecDeque};

/// Kubernetes' tolerance: a usage ratio within 10 % of the target changes nothing.
const TOLERANCE: f64 = 0.1;
/// The scale-up policies' period (both policies use 15 s).
const SCALE_UP_PERIOD: f64 = 15.0;
/// The scale-down stabilization window.
const SCALE_DOWN_STABILIZATION: f64 = 300.0;

/// What an HPA-class Revision scales on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HpaTarget {
    /// Average CPU utilization, percent of the container's CPU request (cores).
    Cpu {
        /// Target utilization, percent.
        utilization: f64,
        /// The container's `resources.requests.cpu`, in cores.
        request_cores: f64,
    },
    /// Average memory per replica, bytes.
    Memory {
        /// Target bytes per replica.
        bytes: f64,
    },
}

/// An HPA-class Revision's scaling parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct HpaSpec {
    /// The metric and its target.
    pub target: HpaTarget,
    /// Fewest replicas (at least 1).
    pub min_scale: i32,
    /// Most replicas; 0 = unbounded.
    pub max_scale: i32,
}

/// Resource usage summed over a Revision's ready replicas.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    /// Ready replicas measured.
    pub replicas: i32,
    /// CPU in use, cores (summed).
    pub cpu_cores: f64,
    /// Resident memory, bytes (summed).
    pub memory_bytes: f64,
}

/// One replica's reading: its id, CPU seconds used so far, resident bytes.
pub type Reading = (u64, f64, u64);

/// One Revision's HPA state: recent recommendations and scale changes, and each
/// replica's last CPU reading.
#[derive(Clone, Debug, Default)]
pub struct Hpa {
    recommendations: VecDeque<(f64, i32)>,
    /// (time, replicas before) of each scale-up in the last period.
    scale_ups: VecDeque<(f64, i32)>,
    /// Replica id → (time, CPU seconds) of its last reading.
    cpu: HashMap<u64, (f64, f64)>,
}

impl Hpa {
    /// The usage the HPA sees at `now` from the ready replicas' readings: memory as
    /// read, CPU as a rate since the same replica's previous reading (a replica read
    /// for the first time has no rate yet and is left out of the CPU average).
    pub fn observe(
        &mut self,
        target: &HpaTarget,
        now: f64,
        readings: impl IntoIterator<Item = Reading>,
    ) -> Option<Usage> {
        let (mut cpu_cores, mut with_rate, mut read, mut memory) = (0.0, 0, 0, 0.0);
        let mut next = HashMap::new();
        for (id, cpu_seconds, memory_bytes) in readings {
            read += 1;
            memory += memory_bytes as f64;
            if let Some((t, c)) = self.cpu.get(&id)
                && now > *t
            {
                cpu_cores += (cpu_seconds - c).max(0.0) / (now - t);
                with_rate += 1;
            }
            next.insert(id, (now, cpu_seconds));
        }
        self.cpu = next;
        let replicas = match target {
            HpaTarget::Cpu { .. } => with_rate,
            HpaTarget::Memory { .. } => read,
        };
        Some(Usage {
            replicas: (replicas > 0).then_some(replicas)?,
            cpu_cores,
            memory_bytes: memory,
        })
    }

    /// The replicas wanted at `now` with `current` replicas running and `usage`
    /// measured over them (`None`: no reading, nothing changes).
    pub fn desired(&mut self, spec: &HpaSpec, now: f64, current: i32, usage: Option<Usage>) -> i32 {
        let min = spec.min_scale.max(1);
        let max = if spec.max_scale > 0 {
            spec.max_scale
        } else {
            i32::MAX
        };
        let bounded = |n: i32| n.clamp(min, max.max(min));
        let Some(u) = usage.filter(|u| u.replicas > 0) else {
            return bounded(current);
        };
        let ratio = match spec.target {
            HpaTarget::Cpu {
                utilization,
                request_cores,
            } => {
                // Kubernetes rounds the observed utilization down to whole percent.
                let observed =
                    (u.cpu_cores / (request_cores * f64::from(u.replicas)) * 100.0).floor();
                observed / utilization
            }
            HpaTarget::Memory { bytes } => u.memory_bytes / f64::from(u.replicas) / bytes,
        };
        let recommendation = if (ratio - 1.0).abs() <= TOLERANCE {
            current
        } else {
            (ratio * f64::from(u.replicas)).ceil() as i32
        };
        self.recommendations.push_back((now, recommendation));
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| now - t > SCALE_DOWN_STABILIZATION)
        {
            self.recommendations.pop_front();
        }
        // Scale-down takes the highest recommendation of the stabilization window.
        let down = self
            .recommendations
            .iter()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(recommendation);
        let mut next = if recommendation > current {
            recommendation
        } else if down < current {
            down
        } else {
            current
        };
        if next > current {
            while self
                .scale_ups
                .front()
                .is_some_and(|(t, _)| now - t >= SCALE_UP_PERIOD)
            {
                self.scale_ups.pop_front();
            }
            let start = self.scale_ups.front().map_or(current, |(_, r)| *r);
            next = next.min((start + 4).max(start * 2));
            if next > current {
                self.scale_ups.push_back((now, current));
            }
        }
        bounded(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(utilization: f64) -> HpaSpec {
        HpaSpec {
            target: HpaTarget::Cpu {
                utilization,
                request_cores: 0.1,
            },
            min_scale: 1,
            max_scale: 0,
        }
    }

    fn usage(replicas: i32, cpu_cores: f64, memory_mib: f64) -> Option<Usage> {
        Some(Usage {
            replicas,
            cpu_cores,
            memory_bytes: memory_mib * 1024.0 * 1024.0,
        })
    }

    #[test]
    fn cpu_is_a_rate_between_readings_of_the_same_replica() {
        let target = cpu(50.0).target;
        let mut h = Hpa::default();
        // First readings: no rate yet.
        assert_eq!(
            h.observe(&target, 0.0, [(1, 10.0, 100), (2, 3.0, 100)]),
            None
        );
        // 2 s later replica 1 used 1 s of CPU (0.5 cores); replica 3 is new.
        let u = h
            .observe(&target, 2.0, [(1, 11.0, 100), (3, 0.0, 50)])
            .unwrap();
        assert_eq!(u.replicas, 1);
        assert!((u.cpu_cores - 0.5).abs() < 1e-9);
        assert_eq!(u.memory_bytes, 150.0);
        // Memory counts every replica read.
        let memory = HpaTarget::Memory { bytes: 1.0 };
        let u = h
            .observe(&memory, 4.0, [(1, 11.0, 100), (3, 0.0, 50)])
            .unwrap();
        assert_eq!((u.replicas, u.memory_bytes), (2, 150.0));
    }

    #[test]
    fn cpu_utilization_against_the_request() {
        let mut h = Hpa::default();
        // 2 replicas at 0.15 cores each of a 0.1-core request: 150 % against 50 %.
        assert_eq!(h.desired(&cpu(50.0), 0.0, 2, usage(2, 0.3, 0.0)), 6);
        // Within 10 % of the target: unchanged.
        let mut h = Hpa::default();
        assert_eq!(h.desired(&cpu(50.0), 0.0, 4, usage(4, 0.21, 0.0)), 4);
    }

    #[test]
    fn scale_up_is_limited_per_period_and_bounds_apply() {
        let mut h = Hpa::default();
        // 1 replica at 10 cores against 50 % of 0.1: 200× — at most max(4, 100 %) more.
        assert_eq!(h.desired(&cpu(50.0), 0.0, 1, usage(1, 10.0, 0.0)), 5);
        // Within the same 15 s the limit counts from the period's start.
        assert_eq!(h.desired(&cpu(50.0), 2.0, 5, usage(5, 50.0, 0.0)), 5);
        assert_eq!(h.desired(&cpu(50.0), 16.0, 5, usage(5, 50.0, 0.0)), 10);
        let capped = HpaSpec {
            max_scale: 3,
            ..cpu(50.0)
        };
        assert_eq!(
            Hpa::default().desired(&capped, 0.0, 1, usage(1, 10.0, 0.0)),
            3
        );
        // Never below one, even idle.
        assert_eq!(
            Hpa::default().desired(&cpu(50.0), 0.0, 2, usage(2, 0.0, 0.0)),
            1
        );
    }

    #[test]
    fn scale_down_waits_for_the_stabilization_window() {
        let spec = HpaSpec {
            target: HpaTarget::Memory {
                bytes: 10.0 * 1024.0 * 1024.0,
            },
            min_scale: 1,
            max_scale: 0,
        };
        let mut h = Hpa::default();
        // 3 replicas holding 20 MiB each against 10 MiB: 6.
        assert_eq!(h.desired(&spec, 0.0, 3, usage(3, 0.0, 60.0)), 6);
        // Load gone: the 6 recommended a moment ago holds for 5 minutes.
        assert_eq!(h.desired(&spec, 60.0, 6, usage(6, 0.0, 6.0)), 6);
        assert_eq!(h.desired(&spec, 299.0, 6, usage(6, 0.0, 6.0)), 6);
        assert_eq!(h.desired(&spec, 301.0, 6, usage(6, 0.0, 6.0)), 1);
        // No reading: nothing changes.
        assert_eq!(h.desired(&spec, 400.0, 1, None), 1);
    }
}
