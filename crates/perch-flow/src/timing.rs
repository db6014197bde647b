//! How much of a hop's time was spent waiting on the provider, told to the
//! caller in a `Server-Timing` header (`upstream;dur=…, perch;dur=…`, in
//! milliseconds), so that Perch's own share of a slow login is visible in
//! a browser's developer tools and measurable by the load tool.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use axum::response::Response;

tokio::task_local! {
    /// Upstream time of the hop running on this task.
    static UPSTREAM: Cell<Duration>;
}

/// Runs a hop, collecting the time its [`upstream`] calls take; returns
/// the response with a `Server-Timing` header and the hop's whole time.
pub(crate) async fn hop(run: impl Future<Output = Response>) -> (Response, Duration) {
    let started = Instant::now();
    let (mut response, waited) = UPSTREAM
        .scope(Cell::new(Duration::ZERO), async {
            let response = run.await;
            (response, UPSTREAM.with(Cell::get))
        })
        .await;
    let total = started.elapsed();
    let own = total.saturating_sub(waited);
    let value = format!(
        "upstream;dur={:.3}, perch;dur={:.3}",
        waited.as_secs_f64() * 1e3,
        own.as_secs_f64() * 1e3
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert("server-timing", value);
    }
    (response, total)
}

/// Awaits a call to the provider, adding its time to the running hop's
/// upstream time (if it runs inside [`hop`]).
pub(crate) async fn upstream<T>(call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let output = call.await;
    let elapsed = started.elapsed();
    // Outside a hop (e.g. unlinking an account) there is nothing to add to.
    let _ = UPSTREAM.try_with(|waited| waited.set(waited.get() + elapsed));
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn upstream_time_is_reported_apart_from_perch_time() {
        let (response, total) = hop(async {
            upstream(tokio::time::sleep(Duration::from_millis(30))).await;
            Response::new(axum::body::Body::empty())
        })
        .await;
        let header = response
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .unwrap()
            .to_owned();
        let ms = |name: &str| -> f64 {
            header
                .split(", ")
                .find_map(|part| part.strip_prefix(&format!("{name};dur=")))
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(ms("upstream") >= 30.0, "{header}");
        assert!(ms("perch") < ms("upstream"), "{header}");
        assert!(total.as_secs_f64() * 1e3 >= ms("upstream"), "{header}");
    }

    #[tokio::test]
    async fn upstream_outside_a_hop_is_harmless() {
        assert_eq!(upstream(async { 7 }).await, 7);
    }
}
