//! The per-socket request rate limit (`server.requests_per_second`): a token bucket.

use std::time::Instant;

/// Token bucket: `rate` frames per second, bursts up to twice that. Rate 0 = unlimited.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second);
        Self {
            rate,
            burst: rate * 2.0,
            tokens: rate * 2.0,
            last: Instant::now(),
        }
    }

    pub fn allow(&mut self, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn limiter_allows_a_burst_of_twice_the_rate_then_refills() {
        let mut l = RateLimiter::new(5);
        let t0 = Instant::now();
        l.last = t0;
        assert_eq!((0..12).filter(|_| l.allow(t0)).count(), 10);
        assert!(l.allow(t0 + Duration::from_millis(200)));
        assert!(!l.allow(t0 + Duration::from_millis(200)));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let mut l = RateLimiter::new(0);
        assert!((0..10_000).all(|_| l.allow(Instant::now())));
    }
}
