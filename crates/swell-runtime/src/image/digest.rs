//! Content digests (`sha256:<64 hex digits>`): parsing, and copying a blob while
//! checking that it is what its digest says.

use sha2::{Digest as _, Sha256};
use std::io::{self, Read, Write};

/// A SHA-256 content digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

/// Why a digest string is not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest {0:?} (want sha256: and 64 lowercase hex digits)")]
pub struct InvalidDigest(pub String);

impl std::str::FromStr for Digest {
    type Err = InvalidDigest;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .ok_or_else(|| InvalidDigest(s.to_string()))?;
        Ok(Digest {
            hex: hex.to_string(),
        })
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl Digest {
    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The digest with this SHA-256 value.
    pub fn from_sha256(value: [u8; 32]) -> Self {
        Digest {
            hex: hex::encode(value),
        }
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest {
            hex: hex::encode(Sha256::digest(bytes)),
        }
    }
}

/// Copies `from` into `to`, returning the bytes copied and their digest.
pub fn copy_hashed(mut from: impl Read, mut to: impl Write) -> io::Result<(u64, Digest)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
    to.flush()?;
    Ok((
        total,
        Digest {
            hex: hex::encode(hasher.finalize()),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_strictly_and_hash() {
        let d = Digest::of(b"hello");
        assert_eq!(
            d.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(d.to_string().parse::<Digest>(), Ok(d.clone()));
        for bad in ["sha256:abc", "md5:2cf2", "sha256:../../etc/passwd", ""] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
        let upper = d.to_string().to_uppercase().replace("SHA256", "sha256");
        assert!(upper.parse::<Digest>().is_err());
        let mut out = Vec::new();
        assert_eq!(copy_hashed(&b"hello"[..], &mut out).unwrap(), (5, d));
        assert_eq!(out, b"hello");
    }
}
