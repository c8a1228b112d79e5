//! `Secret`: a settings value that is never printed by `Debug` nor serialised into a reply,
//! compared in constant time. A leaf module (settings and the BBB client both use it).

use std::fmt;

use serde::Deserialize;
use subtle::ConstantTimeEq;

/// A secret value: never printed by `Debug`, never serialised into a reply.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Whether `given` equals `expected`, in time independent of where they differ (the length
/// may leak, which for tokens and checksums of fixed length tells nothing).
pub fn constant_time_eq(expected: &[u8], given: &[u8]) -> bool {
    expected.ct_eq(given).into()
}

impl Secret {
    /// Whether `given` is this secret (constant-time).
    pub fn matches(&self, given: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), given.as_bytes())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_exact_value_and_debug_hides_it() {
        let s = Secret::new("abc");
        assert!(s.matches("abc"));
        assert!(!s.matches("abd"));
        assert!(!s.matches("ab"));
        assert!(!s.matches(""));
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }
}
