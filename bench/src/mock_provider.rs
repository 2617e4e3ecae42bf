//! A provider API for the send benchmarks: Twilio's "create message" answered after a fixed
//! delay (a provider's real latency), each answer with its own message sid, counting the requests
//! it had in flight at once (the send pipeline's actual concurrency).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Default)]
struct Counters {
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

struct Shared {
    delay: Duration,
    counters: Counters,
}

pub struct MockProvider {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl MockProvider {
    pub async fn start(delay: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            delay,
            counters: Counters::default(),
        });
        let app = Router::new()
            .fallback(create_message)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(MockProvider { addr, shared, task })
    }

    /// `BYOSMS_TWILIO_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.shared.counters.requests.load(Ordering::SeqCst)
    }

    /// The most requests it has had in flight at once since the last reset.
    pub fn max_in_flight(&self) -> usize {
        self.shared.counters.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn reset_max_in_flight(&self) {
        self.shared
            .counters
            .max_in_flight
            .store(0, Ordering::SeqCst);
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn create_message(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let c = &shared.counters;
    let n = c.requests.fetch_add(1, Ordering::SeqCst);
    let now = c.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    c.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(shared.delay).await;
    c.in_flight.fetch_sub(1, Ordering::SeqCst);
    let body = serde_json::json!({"sid": format!("SM{n:032x}"), "status": "queued"});
    (
        StatusCode::CREATED,
        [("content-type", "application/json")],
        body.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_after_the_delay_with_a_new_sid_and_counts_concurrency() {
        let mock = MockProvider::start(Duration::from_millis(20))
            .await
            .unwrap();
        let client = reqwest::Client::new();
        let url = format!("{}/2010-04-01/Accounts/AC1/Messages.json", mock.url());
        let started = std::time::Instant::now();
        let (a, b) = tokio::join!(client.post(&url).send(), client.post(&url).send());
        assert!(started.elapsed() >= Duration::from_millis(20));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.status(), 201);
        let a: serde_json::Value = a.json().await.unwrap();
        let b: serde_json::Value = b.json().await.unwrap();
        assert_ne!(a["sid"], b["sid"]);
        assert_eq!(a["status"], "queued");
        assert_eq!(mock.requests(), 2);
        assert_eq!(mock.max_in_flight(), 2);
    }
}
