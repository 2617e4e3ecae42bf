//! A minimal Lambda Runtime API (the 2018-06-01 interface every runtime client speaks) on a
//! loopback port: it hands the function the invocations the harness queues, and reports when the
//! function first asks for work (the end of its init) and each response or error it posts, with
//! the instant it arrived.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc};

const PREFIX: &str = "/2018-06-01/runtime";

/// What the function did, as the Runtime API saw it.
#[derive(Debug)]
pub enum RuntimeEvent {
    /// The function asked for its next invocation.
    Next { at: Instant },
    /// The function answered an invocation.
    Response {
        request_id: String,
        body: Bytes,
        at: Instant,
    },
    /// The function reported an invocation error or an init error (`request_id` "init").
    Error {
        request_id: String,
        body: Bytes,
        at: Instant,
    },
}

struct Shared {
    invocations: Mutex<mpsc::Receiver<(String, Bytes)>>,
    events: mpsc::UnboundedSender<RuntimeEvent>,
}

/// The server's handle: queue invocations, read what the function did.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    invocations: mpsc::Sender<(String, Bytes)>,
    events: mpsc::UnboundedReceiver<RuntimeEvent>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeApiError {
    #[error("the function sent nothing for {0:?}")]
    Timeout(Duration),
    #[error("the runtime API server stopped")]
    Closed,
    #[error("the function reported an error for {request_id}: {body}")]
    FunctionError { request_id: String, body: String },
    #[error("expected {expected}, the function did {got:?}")]
    Unexpected {
        expected: &'static str,
        got: RuntimeEvent,
    },
    #[error("bind: {0}")]
    Bind(#[from] std::io::Error),
}

impl RuntimeApi {
    /// Serves on a free loopback port.
    pub async fn start() -> Result<Self, RuntimeApiError> {
        let (invocations_tx, invocations_rx) = mpsc::channel(16);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            invocations: Mutex::new(invocations_rx),
            events: events_tx,
        });
        let app = Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{PREFIX}/invocation/{{id}}/response"),
                post(response),
            )
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(error))
            .route(&format!("{PREFIX}/init/error"), post(init_error))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi {
            addr,
            invocations: invocations_tx,
            events: events_rx,
            server,
        })
    }

    /// `AWS_LAMBDA_RUNTIME_API` for the function.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Queues one invocation; the function gets it on its next `next`.
    pub async fn invoke(&self, request_id: &str, event: Bytes) -> Result<(), RuntimeApiError> {
        self.invocations
            .send((request_id.to_string(), event))
            .await
            .map_err(|_| RuntimeApiError::Closed)
    }

    /// The next thing the function did, within `timeout`.
    pub async fn event(&mut self, timeout: Duration) -> Result<RuntimeEvent, RuntimeApiError> {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .map_err(|_| RuntimeApiError::Timeout(timeout))?
            .ok_or(RuntimeApiError::Closed)
    }

    /// Waits for the function's `next`, returning when it came.
    pub async fn expect_next(&mut self, timeout: Duration) -> Result<Instant, RuntimeApiError> {
        match self.event(timeout).await? {
            RuntimeEvent::Next { at } => Ok(at),
            RuntimeEvent::Error {
                request_id, body, ..
            } => Err(function_error(request_id, body)),
            got => Err(RuntimeApiError::Unexpected {
                expected: "next",
                got,
            }),
        }
    }

    /// Waits for the answer to `request_id`, returning its body and when it came.
    pub async fn expect_response(
        &mut self,
        request_id: &str,
        timeout: Duration,
    ) -> Result<(Bytes, Instant), RuntimeApiError> {
        match self.event(timeout).await? {
            RuntimeEvent::Response {
                request_id: id,
                body,
                at,
            } if id == request_id => Ok((body, at)),
            RuntimeEvent::Error {
                request_id, body, ..
            } => Err(function_error(request_id, body)),
            got => Err(RuntimeApiError::Unexpected {
                expected: "a response",
                got,
            }),
        }
    }

    /// One warm invocation: queue it, read the answer and the function's following `next`.
    pub async fn round_trip(
        &mut self,
        request_id: &str,
        event: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, RuntimeApiError> {
        self.invoke(request_id, event).await?;
        let (body, _) = self.expect_response(request_id, timeout).await?;
        self.expect_next(timeout).await?;
        Ok(body)
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn function_error(request_id: String, body: Bytes) -> RuntimeApiError {
    RuntimeApiError::FunctionError {
        request_id,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let _ = shared
        .events
        .send(RuntimeEvent::Next { at: Instant::now() });
    // One function process asks at a time; holding the lock while waiting is the protocol.
    let Some((request_id, event)) = shared.invocations.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", request_id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:000000000000:function:bench".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
    );
    set("content-type", "application/json".into());
    (headers, event).into_response()
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let _ = shared.events.send(RuntimeEvent::Response {
        request_id,
        body,
        at: Instant::now(),
    });
    StatusCode::ACCEPTED
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let _ = shared.events.send(RuntimeEvent::Error {
        request_id,
        body,
        at: Instant::now(),
    });
    StatusCode::ACCEPTED
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let _ = shared.events.send(RuntimeEvent::Error {
        request_id: "init".into(),
        body,
        at: Instant::now(),
    });
    StatusCode::ACCEPTED
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The protocol a runtime client follows, over real HTTP: next, response, next.
    #[tokio::test]
    async fn serves_an_invocation_and_records_the_answer() {
        let mut api = RuntimeApi::start().await.unwrap();
        let base = format!("http://{}{PREFIX}", api.addr);
        let client = reqwest::Client::new();
        api.invoke("req-1", Bytes::from_static(b"{\"x\":1}"))
            .await
            .unwrap();
        let next = client
            .get(format!("{base}/invocation/next"))
            .send()
            .await
            .unwrap();
        assert_eq!(next.headers()["lambda-runtime-aws-request-id"], "req-1");
        assert!(next.headers().contains_key("lambda-runtime-deadline-ms"));
        assert_eq!(next.text().await.unwrap(), "{\"x\":1}");
        api.expect_next(Duration::from_secs(5)).await.unwrap();
        let posted = client
            .post(format!("{base}/invocation/req-1/response"))
            .body("\"ok\"")
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 202);
        let (body, _) = api
            .expect_response("req-1", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(&body[..], b"\"ok\"");
    }

    #[tokio::test]
    async fn an_error_post_is_reported_as_the_functions_error() {
        let mut api = RuntimeApi::start().await.unwrap();
        let base = format!("http://{}{PREFIX}", api.addr);
        reqwest::Client::new()
            .post(format!("{base}/invocation/req-9/error"))
            .body("{\"errorType\":\"boom\"}")
            .send()
            .await
            .unwrap();
        let err = api
            .expect_response("req-9", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
    }
}
