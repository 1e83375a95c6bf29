//! API Gateway HTTP API (payload v2) plumbing shared by the HTTP functions:
//! headers and body of the request, JSON or problem+json responses, and the
//! events the local runtime and tests build (who the caller is lives in
//! [`crate::identity`]).

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use serde::Serialize;
use std::collections::BTreeMap;

use longrun_core::api::Problem;

/// A header's value as text (case-insensitive name); `None` when absent or not UTF-8.
pub fn header<'a>(request: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request body's bytes, decoding base64 when API Gateway encoded it.
pub fn body_bytes(request: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, Problem> {
    let Some(body) = &request.body else {
        return Ok(Vec::new());
    };
    if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| Problem::malformed(format!("body is not valid base64: {e}")))
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

/// A JSON response with extra headers.
pub fn json_response<T: Serialize>(
    status: u16,
    body: &T,
    headers: &[(&'static str, String)],
) -> ApiGatewayV2httpResponse {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    response(status, "application/json", text, headers)
}

/// A problem+json response (with `Retry-After` when the problem has one,
/// and `WWW-Authenticate: Bearer` on a `401`).
pub fn problem_response(problem: &Problem) -> ApiGatewayV2httpResponse {
    let text = serde_json::to_string(problem).unwrap_or_else(|_| "{}".to_owned());
    let mut headers: Vec<(&'static str, String)> = problem
        .retry_after
        .map(|s| (RETRY_AFTER.as_str(), s.to_string()))
        .into_iter()
        .collect();
    if problem.status == 401 {
        headers.push((WWW_AUTHENTICATE.as_str(), "Bearer".to_owned()));
    }
    response(problem.status, "application/problem+json", text, &headers)
}

fn response(
    status: u16,
    content_type: &'static str,
    body: String,
    extra: &[(&'static str, String)],
) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (name, value) in extra {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(Body::Text(body));
    response
}

/// A request as API Gateway would hand it to a function: what the local
/// runtime sends, and what unit tests build. `route_key` is e.g.
/// `"GET /jobs/{id}"`; `jwt_claims`, when given, are the JWT authorizer's
/// claims ([`HttpEvent::claims_of`] makes a test caller's).
pub struct HttpEvent<'a> {
    /// The route API Gateway matched: method and path template, e.g. `"POST /jobs"`.
    pub route_key: &'a str,
    /// The HTTP method, e.g. `"GET"`.
    pub method: &'a str,
    /// The request path without the query string.
    pub path: &'a str,
    /// The raw query string without `?` (`a=1&b=2`); empty for none.
    pub query: &'a str,
    /// Header names and values; names are lower-cased and a repeated name's
    /// values joined with commas.
    pub headers: Vec<(String, String)>,
    /// The body's bytes; `None` for a request without one.
    pub body: Option<&'a [u8]>,
    /// Values of the route's path parameters, e.g. `("id", …)`.
    pub path_parameters: Vec<(String, String)>,
    /// The verified JWT's claims as API Gateway passes them (every value as
    /// text); `None` sends no authorizer context (anonymous).
    pub jwt_claims: Option<BTreeMap<String, String>>,
}

/// The issuer of the identities the local runtime makes from a bare
/// `Authorization: Bearer <name>` (unverified, one machine only), and of the
/// test callers [`HttpEvent::claims_of`] makes.
pub const LOCAL_ISSUER: &str = "longrun-local";

/// The owner the caller `sub` of [`LOCAL_ISSUER`] is.
pub fn local_owner(sub: &str) -> String {
    crate::identity::jwt_owner(LOCAL_ISSUER, sub)
}

impl HttpEvent<'_> {
    /// The claims of a caller named `sub` by [`LOCAL_ISSUER`]; `None` for no caller.
    pub fn claims_of(sub: Option<&str>) -> Option<BTreeMap<String, String>> {
        sub.map(|sub| {
            BTreeMap::from([
                ("iss".to_owned(), LOCAL_ISSUER.to_owned()),
                ("sub".to_owned(), sub.to_owned()),
            ])
        })
    }

    /// The payload-v2 event. Bodies that are not UTF-8 are base64-encoded, as
    /// API Gateway does.
    pub fn to_request(&self) -> ApiGatewayV2httpRequest {
        let mut headers = serde_json::Map::new();
        for (name, value) in &self.headers {
            let name = name.to_ascii_lowercase();
            let joined = match headers.get(&name).and_then(|v| v.as_str()) {
                Some(previous) => format!("{previous},{value}"),
                None => value.clone(),
            };
            headers.insert(name, serde_json::Value::String(joined));
        }
        let (body, is_base64) = match self.body {
            None => (None, false),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => (Some(text.to_owned()), false),
                Err(_) => (Some(base64::engine::general_purpose::STANDARD.encode(bytes)), true),
            },
        };
        let query: serde_json::Map<String, serde_json::Value> = self
            .query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k.to_owned(), serde_json::Value::String(v.to_owned()))
            })
            .collect();
        let path_parameters: serde_json::Map<String, serde_json::Value> = self
            .path_parameters
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let now = chrono::Utc::now();
        let mut context = serde_json::json!({
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": self.method,
                "path": self.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": self.route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        });
        if let Some(claims) = &self.jwt_claims {
            context["authorizer"] = serde_json::json!({"jwt": {"claims": claims, "scopes": null}});
        }
        let mut event = serde_json::json!({
            "version": "2.0",
            "routeKey": self.route_key,
            "rawPath": self.path,
            "rawQueryString": self.query,
            "headers": headers,
            "requestContext": context,
            "isBase64Encoded": is_base64,
        });
        if !query.is_empty() {
            event["queryStringParameters"] = serde_json::Value::Object(query);
        }
        if !path_parameters.is_empty() {
            event["pathParameters"] = serde_json::Value::Object(path_parameters);
        }
        if let Some(body) = body {
            event["body"] = serde_json::Value::String(body);
        }
        serde_json::from_value(event).expect("a payload-v2 event built from valid parts deserialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(value: serde_json::Value) -> ApiGatewayV2httpRequest {
        serde_json::from_value(value).unwrap()
    }

    fn base_event() -> serde_json::Value {
        json!({
            "version": "2.0",
            "routeKey": "POST /jobs",
            "rawPath": "/jobs",
            "rawQueryString": "",
            "headers": {"content-type": "application/json", "Idempotency-Key": "k1"},
            "requestContext": {"http": {"method": "POST", "path": "/jobs"}, "timeEpoch": 0},
            "body": "eyJhIjoxfQ==",
            "isBase64Encoded": true
        })
    }

    #[test]
    fn decodes_base64_bodies_and_reads_headers_case_insensitively() {
        let req = request(base_event());
        assert_eq!(body_bytes(&req).unwrap(), br#"{"a":1}"#);
        assert_eq!(header(&req, "idempotency-key"), Some("k1"));

        let mut bad = base_event();
        bad["body"] = json!("***");
        assert_eq!(body_bytes(&request(bad)).unwrap_err().status, 400);
    }

    #[test]
    fn built_events_read_back_like_api_gateway_ones() {
        let req = HttpEvent {
            route_key: "GET /jobs/{id}",
            method: "GET",
            path: "/jobs/abc",
            query: "wait=5",
            headers: vec![("X-Thing".into(), "1".into()), ("x-thing".into(), "2".into())],
            body: Some(&[0xff, 0x00]),
            path_parameters: vec![("id".into(), "abc".into())],
            jwt_claims: HttpEvent::claims_of(Some("carol")),
        }
        .to_request();
        assert_eq!(crate::identity::identity(&req, false), Some(local_owner("carol")));
        assert_eq!(header(&req, "x-thing"), Some("1,2"));
        assert_eq!(req.path_parameters["id"], "abc");
        assert_eq!(req.query_string_parameters.first("wait"), Some("5"));
        assert_eq!(body_bytes(&req).unwrap(), vec![0xff, 0x00]);
        assert_eq!(req.request_context.http.method, http::Method::GET);
    }

    #[test]
    fn problem_responses_carry_media_type_and_retry_after() {
        let resp = problem_response(&Problem::unavailable("down", 7));
        assert_eq!(resp.status_code, 503);
        assert_eq!(resp.headers["content-type"], "application/problem+json");
        assert_eq!(resp.headers["retry-after"], "7");
        let Some(Body::Text(text)) = resp.body else {
            panic!("text body")
        };
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["status"], 503);
        assert_eq!(body["type"], "urn:longrun:problem:unavailable");
    }
}
