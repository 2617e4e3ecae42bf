//! The webhook Lambdas' one job: turn an API Gateway v2 HTTP API event (or a Lambda function URL
//! event, which has the same shape) into a [`WebhookRequest`], call the receive pipeline, and turn
//! its reply into a response. `receive-message` and `receive-status` differ only in their route.

use byosms::Deps;
use byosms::pipeline::receive;
use byosms::webhook::{Route, RouteKind, WebhookReply, WebhookRequest, public_url};
use lambda_http::{Body, Request, RequestExt, Response};

/// Reads `{provider}` and `{orgId}` from the path parameters API Gateway extracted, falling back
/// to the raw path (function URLs have no path parameters).
fn route(kind: RouteKind, request: &Request) -> Option<Route> {
    let params = request.path_parameters();
    if let (Some(provider), Some(org)) = (params.first("provider"), params.first("orgId")) {
        return Some(Route {
            kind,
            provider_slug: provider.to_string(),
            org_id: org.to_string(),
        });
    }
    Route::from_path(request.raw_http_path())
        .or_else(|| Route::from_path(request.uri().path()))
        .map(|r| Route { kind, ..r })
}

/// The scheme the provider called. API Gateway and function URLs terminate TLS and always say
/// so in `X-Forwarded-Proto`; a request without it reached the function with nothing in front,
/// which only the local emulator (`cargo lambda watch`, plain HTTP) does.
fn scheme(headers: &lambda_http::http::HeaderMap) -> &str {
    headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http")
}

fn webhook_request(deps: &Deps, request: Request) -> WebhookRequest {
    let (parts, body) = request.into_parts();
    let raw_path = match parts.extensions.raw_http_path() {
        "" => parts.uri.path().to_string(),
        raw => raw.to_string(),
    };
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .or(parts.uri.host())
        .unwrap_or("localhost")
        .to_string();
    let scheme = scheme(&parts.headers).to_string();
    let base = deps.settings.public_base_url.as_ref().map(|u| u.as_str());
    WebhookRequest {
        method: parts.method,
        public_url: public_url(base, &scheme, &host, &raw_path, &raw_query),
        raw_path,
        raw_query,
        headers: parts.headers,
        body: body.to_vec().into(),
        received_at: chrono::Utc::now(),
    }
}

/// The one response helper: a pipeline reply as an HTTP response.
pub fn response(reply: WebhookReply) -> Response<Body> {
    Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type)
        .body(Body::Text(reply.body))
        .unwrap_or_else(|_| {
            let mut fallback = Response::new(Body::Empty);
            *fallback.status_mut() = lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}

/// The handler both webhook functions run. Infallible: every outcome is an HTTP answer.
#[tracing::instrument(skip_all, fields(route = kind.as_str()))]
pub async fn handle(
    deps: &Deps,
    kind: RouteKind,
    request: Request,
) -> Result<Response<Body>, std::convert::Infallible> {
    let Some(route) = route(kind, &request) else {
        return Ok(response(WebhookReply::error(
            404,
            "not a webhook route: expected .../{provider}/{orgId}",
        )));
    };
    let request = webhook_request(deps, request);
    Ok(response(receive::receive(deps, &route, &request).await))
}
