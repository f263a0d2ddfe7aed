//! `autoscale`: `?sleep=` (milliseconds or a Go duration, `sleep-stddev=` for a
//! normal spread), `?prime=N` (burns CPU sieving primes up to N) and `?bloat=MB`
//! (allocates and touches N MiB); the actions asked for run in parallel.

use crate::serve::{Handler, ok, query, text};
use http::StatusCode;
use std::sync::Arc;
use std::time::Duration;

/// Parses `sleep`: a whole number of milliseconds, or a Go duration (`1.5s`, `300ms`).
pub fn parse_sleep(v: &str) -> Option<Duration> {
    if let Ok(ms) = v.parse::<u64>() {
        return Some(Duration::from_millis(ms));
    }
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = v.split_at(split);
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

/// The largest prime ≤ `n` (0 when there is none), found with a sieve.
pub fn largest_prime(n: usize) -> usize {
    if n < 2 {
        return 0;
    }
    let mut composite = vec![false; n + 1];
    let mut i = 2;
    while i * i <= n {
        if !composite[i] {
            let mut j = i * i;
            while j <= n {
                composite[j] = true;
                j += i;
            }
        }
        i += 1;
    }
    (2..=n).rev().find(|&k| !composite[k]).unwrap_or(0)
}

/// A normally distributed sample (Box–Muller).
fn normal(mean: f64, stddev: f64) -> f64 {
    let u1 = fastrand::f64().max(f64::MIN_POSITIVE);
    let u2 = fastrand::f64();
    mean + stddev * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The image's handler.
pub fn handler() -> Handler {
    Arc::new(|req| {
        let sleep = query(&req, "sleep");
        let stddev = query(&req, "sleep-stddev");
        let prime = query(&req, "prime");
        let bloat = query(&req, "bloat");
        Box::pin(async move {
            let bad = |what: &str, v: &str| {
                text(StatusCode::BAD_REQUEST, format!("invalid {what}: {v:?}\n"))
            };
            let mut sleep_for = None;
            if let Some(v) = &sleep {
                let Some(d) = parse_sleep(v) else {
                    return bad("sleep", v);
                };
                sleep_for = Some(d);
            }
            if let (Some(d), Some(sd)) = (sleep_for, &stddev) {
                let Ok(sd) = sd.parse::<f64>() else {
                    return bad("sleep-stddev", sd);
                };
                let ms = normal(d.as_secs_f64() * 1e3, sd).max(0.0);
                sleep_for = Some(Duration::from_secs_f64(ms / 1e3));
            }
            let prime_n = match &prime {
                Some(v) => match v.parse::<usize>() {
                    Ok(n) if n > 0 && n <= 400_000_000 => Some(n),
                    _ => return bad("prime", v),
                },
                None => None,
            };
            let bloat_mb = match &bloat {
                Some(v) => match v.parse::<usize>() {
                    Ok(n) if n <= 64 * 1024 => Some(n),
                    _ => return bad("bloat", v),
                },
                None => None,
            };
            let sleeping = async {
                match sleep_for {
                    Some(d) => {
                        tokio::time::sleep(d).await;
                        format!("Slept for {:.2} milliseconds.\n", d.as_secs_f64() * 1e3)
                    }
                    None => String::new(),
                }
            };
            let sieving = async {
                match prime_n {
                    Some(n) => {
                        let p = tokio::task::spawn_blocking(move || largest_prime(n))
                            .await
                            .unwrap_or(0);
                        format!("The largest prime less than {n} is {p}.\n")
                    }
                    None => String::new(),
                }
            };
            let bloating = async {
                match bloat_mb {
                    Some(mb) => {
                        tokio::task::spawn_blocking(move || {
                            let mut v = vec![0u8; mb * 1024 * 1024];
                            for page in v.chunks_mut(4096) {
                                page[0] = 1;
                            }
                            std::hint::black_box(&v);
                        })
                        .await
                        .ok();
                        format!("Allocated {mb} Mb.\n")
                    }
                    None => String::new(),
                }
            };
            let (a, b, c) = tokio::join!(sleeping, sieving, bloating);
            ok(format!("{a}{b}{c}"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_takes_milliseconds_or_go_durations() {
        assert_eq!(parse_sleep("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_sleep("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_sleep("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_sleep("-1"), None);
        assert_eq!(parse_sleep("soon"), None);
    }

    #[test]
    fn primes() {
        assert_eq!(largest_prime(1), 0);
        assert_eq!(largest_prime(10), 7);
        assert_eq!(largest_prime(97), 97);
        assert_eq!(largest_prime(100), 97);
    }
}
