//! Request limits of the API, applied by [`crate::with_limits`]: the largest request body and
//! a request rate (a token bucket shared by every client). A request over the rate is refused
//! at once with `E_OUTOFMEMORY` ("a resource limit was hit", HTTP 503, BEHAVIOUR.md §1) and
//! `Retry-After: 1`; nothing it asked for is done. An oversized body is `413` with
//! `E_INVALIDARG` (see `extract`).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use vds_model::Hresult;

use crate::error::ApiError;

/// Limits on what clients may ask of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// Sustained requests per second over all clients; 0 turns the rate limit off.
    pub rate_per_sec: u32,
    /// Requests that may arrive at once above the sustained rate (the bucket size).
    pub burst: u32,
}

impl Default for ApiLimits {
    /// 1 MiB bodies; no rate limit: by default the API listens on loopback only, where its
    /// clients are the host's own tools (bulk scripts and benchmarks run well above 1000
    /// requests a second). Set a rate when the API faces other clients.
    fn default() -> Self {
        ApiLimits {
            body_limit: crate::extract::BODY_LIMIT,
            rate_per_sec: 0,
            burst: 100,
        }
    }
}

/// The body limit in force for one request (a request extension set by [`with_limits`]).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A token bucket: `burst` tokens, refilled at `rate` per second.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(rate_per_sec: u32, burst: u32) -> RateLimiter {
        let burst = f64::from(burst.max(1));
        RateLimiter {
            rate: f64::from(rate_per_sec),
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes one token if there is one (`now` is passed in so tests control time).
    pub fn try_acquire(&self, now: Instant) -> bool {
        let mut s = self.state.lock();
        let elapsed = now.saturating_duration_since(s.1).as_secs_f64();
        s.0 = (s.0 + elapsed * self.rate).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

pub(crate) async fn rate_limit(
    State(rl): State<Arc<RateLimiter>>,
    req: Request,
    next: Next,
) -> Response {
    if !rl.try_acquire(Instant::now()) {
        let mut r = ApiError::new(
            Hresult::E_OUTOFMEMORY,
            format!(
                "too many requests: the API accepts {} per second (burst {}); retry later",
                rl.rate, rl.burst
            ),
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    next.run(req).await
}

pub(crate) async fn body_limit(
    State(limit): State<usize>,
    mut req: Request,
    next: Next,
) -> Response {
    req.extensions_mut().insert(BodyLimit(limit));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let rl = RateLimiter::new(10, 3);
        let t0 = Instant::now();
        assert!((0..3).all(|_| rl.try_acquire(t0)));
        assert!(!rl.try_acquire(t0));
        // 100 ms at 10/s is one more token.
        assert!(rl.try_acquire(t0 + Duration::from_millis(100)));
        assert!(!rl.try_acquire(t0 + Duration::from_millis(100)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| rl.try_acquire(later)));
        assert!(!rl.try_acquire(later));
    }
}
