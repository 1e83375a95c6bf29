//! API Gateway HTTP API (payload v2) plumbing shared by the HTTP functions:
//! who the caller is, headers and body of the request, and JSON or
//! problem+json responses.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use serde::Serialize;

use crate::api::Problem;

/// The owner used when the API has no authorizer (local runs, open stacks).
pub const ANONYMOUS_OWNER: &str = "anonymous";

/// The caller's identity from the authorizer context: the JWT `sub` claim,
/// or a Lambda authorizer's `owner`/`sub` field; anonymous without one.
pub fn caller(request: &ApiGatewayV2httpRequest) -> String {
    let Some(authorizer) = &request.request_context.authorizer else {
        return ANONYMOUS_OWNER.to_owned();
    };
    if let Some(sub) = authorizer.jwt.as_ref().and_then(|jwt| jwt.claims.get("sub")) {
        return sub.clone();
    }
    ["owner", "sub"]
        .iter()
        .find_map(|name| authorizer.fields.get(*name).and_then(|v| v.as_str()))
        .map(str::to_owned)
        .unwrap_or_else(|| ANONYMOUS_OWNER.to_owned())
}

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

/// A problem+json response (with `Retry-After` when the problem has one).
pub fn problem_response(problem: &Problem) -> ApiGatewayV2httpResponse {
    let text = serde_json::to_string(problem).unwrap_or_else(|_| "{}".to_owned());
    let retry: Vec<(&'static str, String)> = problem
        .retry_after
        .map(|s| (RETRY_AFTER.as_str(), s.to_string()))
        .into_iter()
        .collect();
    response(problem.status, "application/problem+json", text, &retry)
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
    fn reads_owner_from_jwt_claims_then_lambda_authorizer() {
        assert_eq!(caller(&request(base_event())), ANONYMOUS_OWNER);

        let mut jwt = base_event();
        jwt["requestContext"]["authorizer"] = json!({"jwt": {"claims": {"sub": "alice"}, "scopes": null}});
        assert_eq!(caller(&request(jwt)), "alice");

        let mut lambda = base_event();
        lambda["requestContext"]["authorizer"] = json!({"lambda": {"owner": "bob"}});
        assert_eq!(caller(&request(lambda)), "bob");
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
    fn problem_responses_carry_media_type_and_retry_after() {
        let resp = problem_response(&Problem::unavailable("down", 7));
        assert_eq!(resp.status_code, 503);
        assert_eq!(resp.headers["content-type"], "application/problem+json");
        assert_eq!(resp.headers["retry-after"], "7");
        let Some(Body::Text(text)) = resp.body else { panic!("text body") };
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["status"], 503);
        assert_eq!(body["type"], "urn:longrun:problem:unavailable");
    }
}
