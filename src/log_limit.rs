//! Aggregated log lines for warnings that can repeat once per request (no usable BBB server,
//! failing BBB calls, store errors): the first occurrence of a key is logged, later ones within
//! `INTERVAL` are only counted, and the next line after the interval says how many were left
//! out. An outage under full load thus writes a few lines a second, not one per request; the
//! exact numbers stay in `/metrics`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// At most one line per key in this interval.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// What to do with one occurrence of a repeated message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Write the line; `suppressed` occurrences were left out since the last line of this key.
    Log { suppressed: u64 },
    /// Count it only.
    Suppress,
}

/// The pure core: per key, when its last line was written and how many were left out since.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    keys: HashMap<String, (Instant, u64)>,
}

impl LogLimiter {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            keys: HashMap::new(),
        }
    }

    /// Decides about one occurrence of `key` at `now`.
    pub fn check(&mut self, key: &str, now: Instant) -> Decision {
        match self.keys.get_mut(key) {
            Some((last, suppressed)) if now.saturating_duration_since(*last) < self.interval => {
                *suppressed += 1;
                Decision::Suppress
            }
            Some((last, suppressed)) => {
                let left_out = std::mem::take(suppressed);
                *last = now;
                Decision::Log { suppressed: left_out }
            }
            None => {
                // Keys are a fixed set of call sites, so this map stays small.
                self.keys.insert(key.to_string(), (now, 0));
                Decision::Log { suppressed: 0 }
            }
        }
    }
}

static LIMITER: LazyLock<Mutex<LogLimiter>> = LazyLock::new(|| Mutex::new(LogLimiter::new(INTERVAL)));

fn decide(key: &str) -> Decision {
    match LIMITER.lock() {
        Ok(mut limiter) => limiter.check(key, Instant::now()),
        Err(_) => Decision::Log { suppressed: 0 },
    }
}

fn with_count(message: &str, decision: Decision) -> Option<String> {
    match decision {
        Decision::Suppress => None,
        Decision::Log { suppressed: 0 } => Some(message.to_string()),
        Decision::Log { suppressed } => Some(format!(
            "{message} (and {suppressed} more like it in the last {} s)",
            INTERVAL.as_secs()
        )),
    }
}

/// `log::warn!` at most once per `INTERVAL` for `key` (a call site, not a room or user).
pub fn warn(key: &str, message: &str) {
    if log::log_enabled!(log::Level::Warn) {
        if let Some(line) = with_count(message, decide(key)) {
            log::warn!("{line}");
        }
    }
}

/// `log::error!` at most once per `INTERVAL` for `key`.
pub fn error(key: &str, message: &str) {
    if log::log_enabled!(log::Level::Error) {
        if let Some(line) = with_count(message, decide(key)) {
            log::error!("{line}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn first_occurrence_is_logged_then_counted_until_the_interval_ends() {
        let mut l = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.check("a", t0), Decision::Log { suppressed: 0 });
        for i in 1..=500 {
            assert_eq!(l.check("a", t0 + Duration::from_millis(i)), Decision::Suppress);
        }
        assert_eq!(
            l.check("a", t0 + Duration::from_secs(10)),
            Decision::Log { suppressed: 500 }
        );
        assert_eq!(l.check("a", t0 + Duration::from_secs(11)), Decision::Suppress);
        assert_eq!(
            l.check("a", t0 + Duration::from_secs(25)),
            Decision::Log { suppressed: 1 }
        );
    }

    #[test]
    fn keys_are_independent() {
        let mut l = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.check("a", t0), Decision::Log { suppressed: 0 });
        assert_eq!(l.check("b", t0), Decision::Log { suppressed: 0 });
        assert_eq!(l.check("a", t0), Decision::Suppress);
    }

    #[test]
    fn a_flood_writes_one_line_per_interval() {
        let mut l = LogLimiter::new(Duration::from_secs(1));
        let t0 = Instant::now();
        // 100,000 occurrences over 10 s: one line a second.
        let lines = (0..100_000u64)
            .filter(|i| l.check("flood", t0 + Duration::from_micros(i * 100)) != Decision::Suppress)
            .count();
        assert_eq!(lines, 10);
    }

    #[test]
    fn the_line_after_a_quiet_spell_names_the_count() {
        assert_eq!(with_count("x", Decision::Log { suppressed: 0 }).unwrap(), "x");
        assert_eq!(
            with_count("x", Decision::Log { suppressed: 7 }).unwrap(),
            "x (and 7 more like it in the last 10 s)"
        );
        assert_eq!(with_count("x", Decision::Suppress), None);
    }
}
