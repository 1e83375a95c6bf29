//! Plays API Gateway (HTTP API, payload v2): turns each HTTP request into
//! the same event API Gateway would send, routes it by the template's
//! `HttpApi` events, invokes the function's handler and turns its answer
//! back into HTTP. Callers are authenticated by [`crate::jwt`]: real JWTs
//! against a key set (`--jwks`), refused with API Gateway's own `401`; or,
//! without one, a bearer token's text as the caller's name. Without a token
//! the event then carries no authorizer context and the function answers
//! `401`, as a deployed function behind a missing authorizer would (unless
//! the template sets `AllowAnonymous=true`).
//! Also serves `/_local/health`, `/_local/resources` (physical names and
//! ARNs) and `/_local/environment/{FunctionLogicalId}` for scripts and tests,
//! and the API's OpenAPI document at `/openapi.yaml` (no bearer token needed).

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body as EventBody;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use longrun_lambda::apigw::HttpEvent;
use tokio_stream::StreamExt;

use crate::cors::{self, CorsRules};
use crate::functions::LocalFunction;
use crate::openapi;
use crate::resources::Deployed;
use longrun_events::EventsDeps;

/// API Gateway's own payload limit.
const API_GATEWAY_MAX_BODY: usize = 10 * 1024 * 1024;
/// API Gateway's integration timeout.
const API_GATEWAY_TIMEOUT: Duration = Duration::from_secs(30);

/// One route: method + path template (`/jobs/{id}`) → function.
pub struct Route {
    /// The HTTP method, upper case.
    pub method: String,
    /// The path template, e.g. `/jobs/{id}`.
    pub path: String,
    /// The function that answers it.
    pub function: Arc<LocalFunction>,
}

/// The path parameters when `path` matches the route template (`/jobs/{id}`).
fn match_path(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let template: Vec<&str> = template.trim_matches('/').split('/').collect();
    let actual: Vec<&str> = path.trim_matches('/').split('/').collect();
    if template.len() != actual.len() {
        return None;
    }
    let mut params = Vec::new();
    for (t, a) in template.iter().zip(&actual) {
        match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            Some(name) if !a.is_empty() => params.push((name.to_owned(), (*a).to_owned())),
            Some(_) => return None,
            None if t == a => {}
            None => return None,
        }
    }
    Some(params)
}

/// What the HTTP side serves.
pub struct LocalApi {
    /// The HttpApi routes of the template.
    pub routes: Vec<Route>,
    /// The function with a URL (the events function): it answers what no
    /// API route does, as its own host would.
    pub url_function: Option<Arc<LocalFunction>>,
    /// The resources as created (for `/_local/resources`).
    pub deployed: Deployed,
    /// The OpenAPI document served at `/openapi.yaml`: the app's job types'
    /// ([`openapi::document_for`] the submit function's registry), as YAML.
    pub openapi: String,
    /// How callers are authenticated.
    pub authorizer: crate::jwt::Authorizer,
    /// Function logical id → its resolved environment (for `/_local/environment/{id}`).
    pub environments: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    /// The HTTP API's CORS (`CorsConfiguration`), if it has one.
    pub api_cors: Option<CorsRules>,
    /// The function URL's CORS (`FunctionUrlConfig.Cors`), if it has one.
    pub url_cors: Option<CorsRules>,
}

/// The local API Gateway as an axum router.
pub fn app(api: Arc<LocalApi>) -> Router {
    Router::new()
        .route("/_local/health", get(|| async { "ok" }))
        .route(
            "/openapi.yaml",
            get(|State(api): State<Arc<LocalApi>>| async move {
                ([(CONTENT_TYPE, openapi::MEDIA_TYPE)], api.openapi.clone())
            }),
        )
        .route(
            "/_local/resources",
            get(|State(api): State<Arc<LocalApi>>| async move { Json(api.deployed.clone()) }),
        )
        .route(
            "/_local/environment/{function}",
            get(
                |State(api): State<Arc<LocalApi>>, axum::extract::Path(function): axum::extract::Path<String>| async move {
                    match api.environments.get(&function) {
                        Some(env) => Json(env.clone()).into_response(),
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                },
            ),
        )
        .fallback(dispatch)
        .layer(DefaultBodyLimit::max(API_GATEWAY_MAX_BODY))
        .with_state(api)
}

/// Every request that is not the runtime's own: a CORS preflight answered
/// as the gateway (or the function URL) would, anything else routed, and
/// the answer given the CORS headers of whichever of the two answered.
async fn dispatch(
    State(api): State<Arc<LocalApi>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let on_api = api
        .routes
        .iter()
        .any(|route| match_path(&route.path, uri.path()).is_some());
    let rules = if on_api {
        api.api_cors.as_ref()
    } else {
        api.url_function.as_ref().and(api.url_cors.as_ref())
    };
    if let Some(rules) = rules.filter(|_| cors::is_preflight(&method, &headers)) {
        return cors::preflight(rules, &headers);
    }
    let answer = route(&api, &method, &uri, &headers, body).await;
    cors::on_answer(rules, &headers, answer)
}

async fn route(api: &LocalApi, method: &Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Response {
    let path = uri.path();
    let matched = api.routes.iter().find_map(|route| {
        let method_ok = route.method == "ANY" || route.method == method.as_str();
        match_path(&route.path, path)
            .filter(|_| method_ok)
            .map(|params| (route, params))
    });
    let Some((route, path_parameters)) = matched else {
        if let Some(function) = api.url_function.as_ref() {
            if let Some(events) = function.stream() {
                return function_url(function, events, method, uri, headers).await;
            }
        }
        return (StatusCode::NOT_FOUND, Json(serde_json::json!({"message": "Not Found"}))).into_response();
    };
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    let jwt_claims = match api.authorizer.authorize(authorization, chrono::Utc::now().timestamp()) {
        Ok(claims) => claims,
        Err(refusal) => return unauthorized(&refusal),
    };
    let header_pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
        .collect();
    let route_key = format!("{} {}", route.method, route.path);
    let request = HttpEvent {
        route_key: &route_key,
        method: method.as_str(),
        path,
        query: uri.query().unwrap_or(""),
        headers: header_pairs,
        body: (!body.is_empty()).then_some(&body[..]),
        path_parameters,
        jwt_claims,
    }
    .to_request();
    let Some(function) = route.function.http().cloned() else {
        tracing::error!(function = %route.function.spec.logical_id, "not an HTTP function");
        return internal_error(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let invocation = tokio::spawn(async move { function.call(request).await });
    match tokio::time::timeout(API_GATEWAY_TIMEOUT, invocation).await {
        Ok(Ok(response)) => into_http(response),
        Ok(Err(_panic)) => internal_error(StatusCode::INTERNAL_SERVER_ERROR),
        Err(_elapsed) => internal_error(StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// API Gateway's answer to a request its JWT authorizer refused.
fn unauthorized(refusal: &crate::jwt::Refusal) -> Response {
    tracing::info!(%refusal, "request refused by the JWT authorizer");
    let challenge = match refusal {
        crate::jwt::Refusal::Missing => "Bearer".to_owned(),
        crate::jwt::Refusal::Invalid(why) => format!("Bearer error=\"invalid_token\" error_description=\"{why}\""),
    };
    (
        StatusCode::UNAUTHORIZED,
        [(axum::http::header::WWW_AUTHENTICATE, challenge)],
        Json(serde_json::json!({"message": "Unauthorized"})),
    )
        .into_response()
}

/// Plays a function URL in `RESPONSE_STREAM` mode: the request as the
/// payload v2 event a URL sends (no authorizer: the function checks its
/// own ticket), the answer streamed as the function writes it. Over the
/// function's reserved concurrency (one invocation per open stream, held
/// until the stream ends) the URL answers `429`, as Lambda throttles it.
async fn function_url(
    function: &LocalFunction,
    events: &Arc<EventsDeps>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let permit = match &function.concurrency {
        Some(permits) => match permits.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                tracing::warn!(function = %function.spec.logical_id, "throttled: reserved concurrency in use");
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(serde_json::json!({"Message": "Rate Exceeded."})),
                )
                    .into_response();
            }
        },
        None => None,
    };
    let header_pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
        .collect();
    let request = HttpEvent {
        route_key: "$default",
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: header_pairs,
        body: None,
        path_parameters: Vec::new(),
        jwt_claims: None,
    }
    .to_request();
    let stream = longrun_events::open(events, &request).await;
    // The invocation lasts as long as its answer streams.
    let body = stream.body.map(move |chunk| {
        let _invocation = &permit;
        chunk
    });
    let mut http = Response::new(Body::from_stream(body));
    *http.status_mut() = stream.status;
    *http.headers_mut() = stream.headers;
    http
}

/// What API Gateway answers when the integration fails.
fn internal_error(status: StatusCode) -> Response {
    (status, Json(serde_json::json!({"message": "Internal Server Error"}))).into_response()
}

fn into_http(response: ApiGatewayV2httpResponse) -> Response {
    let status = StatusCode::from_u16(response.status_code as u16).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = match response.body {
        None | Some(EventBody::Empty) => Body::empty(),
        Some(EventBody::Text(text)) if response.is_base64_encoded => Body::from(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap_or_default(),
        ),
        Some(EventBody::Text(text)) => Body::from(text),
        Some(EventBody::Binary(bytes)) => Body::from(bytes),
        Some(_) => Body::empty(),
    };
    let mut http = Response::new(body);
    *http.status_mut() = status;
    for (name, value) in response.headers.iter().chain(response.multi_value_headers.iter()) {
        http.headers_mut().append(name.clone(), value.clone());
    }
    http
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_templates_bind_parameters() {
        let id = vec![("id".to_owned(), "abc".to_owned())];
        assert_eq!(match_path("/jobs/{id}", "/jobs/abc"), Some(id.clone()));
        assert_eq!(match_path("/jobs/{id}", "/jobs/abc/"), Some(id));
        assert_eq!(match_path("/jobs/{id}", "/jobs"), None);
        assert_eq!(match_path("/jobs/{id}", "/jobs/abc/cancel"), None);
        assert_eq!(match_path("/jobs/{id}", "/other/abc"), None);
        assert_eq!(match_path("/jobs", "/jobs"), Some(Vec::new()));
        assert_eq!(
            match_path("/jobs/{id}/cancel", "/jobs/x/cancel").map(|p| p.len()),
            Some(1)
        );
    }
}
