//! Kubernetes resource quantities (`100m`, `0.5`, `2`, `64Mi`, `1G`, `1e3`) as numbers:
//! CPU in cores, memory in bytes.

/// The value of a quantity, suffixes applied (`m` = 1/1000, `Ki` = 1024, `k` = 1000…).
pub fn value(quantity: &str) -> Option<f64> {
    let q = quantity.trim();
    const SUFFIXES: [(&str, f64); 16] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("", 1.0),
    ];
    let (num, scale) = SUFFIXES
        .iter()
        .find_map(|(s, scale)| q.strip_suffix(s).map(|n| (n, *scale)))?;
    // A bare `e` exponent (`1e3`) parses as a float; `E` alone is exa, handled above.
    num.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| n * scale)
}

/// A CPU quantity in cores.
pub fn cores(quantity: &str) -> Option<f64> {
    value(quantity)
}

/// A memory quantity in bytes (rounded up, as Kubernetes does).
pub fn bytes(quantity: &str) -> Option<u64> {
    value(quantity).map(|v| v.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_like_kubernetes() {
        assert_eq!(cores("100m"), Some(0.1));
        assert_eq!(cores("2"), Some(2.0));
        assert_eq!(cores("0.5"), Some(0.5));
        assert_eq!(bytes("64Mi"), Some(64 * 1024 * 1024));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("1e3"), Some(1000));
        assert_eq!(bytes("128974848"), Some(128_974_848));
        for bad in ["", "lots", "-1", "1Zi", "Mi"] {
            assert_eq!(value(bad), None, "{bad}");
        }
    }
}
