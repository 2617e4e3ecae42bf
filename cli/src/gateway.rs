//! `byosms serve`: the local gateway. The webhook routes, `POST /send` and `GET /healthz` over
//! the same pipelines the Lambdas run.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use byosms::Deps;
use byosms::pipeline::receive::{self, MAX_BODY_BYTES};
use byosms::pipeline::send::{self, SendRequest};
use byosms::webhook::{ROUTE_PREFIX, Route, WebhookReply, WebhookRequest, public_url};
use std::sync::Arc;
use url::Url;

/// The one response helper: a pipeline reply as an HTTP response.
fn reply(reply: WebhookReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    response
}

/// What the handlers share.
struct Gateway {
    deps: Deps,
    /// The base URL providers sign (`BYOSMS_PUBLIC_BASE_URL`); without it the URL is rebuilt
    /// from each request, as behind a tunnel that keeps the public host.
    signed_base: Option<String>,
}

pub fn router(deps: Deps, signed_base: Option<Url>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async {
                reply(WebhookReply::new(
                    200,
                    "application/json",
                    r#"{"status":"ok"}"#,
                ))
            }),
        )
        .route("/send", post(send_handler))
        .route(
            &format!("{ROUTE_PREFIX}/{{kind}}/{{provider}}/{{org}}"),
            any(webhook_handler),
        )
        .fallback(|| async { reply(WebhookReply::error(404, "no such route")) })
        .with_state(Arc::new(Gateway {
            deps,
            signed_base: signed_base.map(String::from),
        }))
}

async fn read_body(body: Body) -> Result<axum::body::Bytes, Response> {
    to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        reply(WebhookReply::error(
            413,
            &format!("body larger than {MAX_BODY_BYTES} bytes"),
        ))
    })
}

async fn webhook_handler(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if parts.method != axum::http::Method::GET && parts.method != axum::http::Method::POST {
        return reply(WebhookReply::error(405, "webhook routes take GET or POST"));
    }
    let Some(route) = Route::from_path(parts.uri.path()) else {
        return reply(WebhookReply::error(
            404,
            "not a webhook route: expected .../message|status/{provider}/{orgId}",
        ));
    };
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    // A tunnel or proxy terminating TLS says so in X-Forwarded-Proto.
    let scheme = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http")
        .to_string();
    let request = WebhookRequest {
        method: parts.method,
        public_url: public_url(
            gateway.signed_base.as_deref(),
            &scheme,
            &host,
            parts.uri.path(),
            &raw_query,
        ),
        raw_path: parts.uri.path().to_string(),
        raw_query,
        headers: parts.headers,
        body,
        received_at: chrono::Utc::now(),
    };
    reply(receive::receive(&gateway.deps, &route, &request).await)
}

fn send_error(status: u16, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    reply(WebhookReply::new(
        status,
        "application/json",
        body.to_string(),
    ))
}

async fn send_handler(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let deps = &gateway.deps;
    let body = match read_body(request.into_body()).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let request: SendRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return send_error(
                400,
                "invalid_request",
                &format!("the body is not a send request: {e}"),
            );
        }
    };
    match send::send(deps, &request).await {
        Ok(response) => reply(WebhookReply::new(
            200,
            "application/json",
            serde_json::to_string(&response).unwrap_or_default(),
        )),
        Err(err) => send_error(err.http_status(), err.code(), &err.to_string()),
    }
}

/// Serves until Ctrl-C.
pub async fn serve(
    listener: tokio::net::TcpListener,
    deps: Deps,
    signed_base: Option<Url>,
) -> std::io::Result<()> {
    axum::serve(listener, router(deps, signed_base))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
