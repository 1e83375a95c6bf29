//! Plays the CORS of API Gateway's HTTP API (`CorsConfiguration`) and of a
//! Lambda function URL (`FunctionUrlConfig.Cors`), from the template as
//! resolved, so a browser page sees the same answers locally as deployed:
//! a preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered
//! by the gateway itself, `204`, without calling a function or asking for a
//! token, with the allow headers only for an allowed origin; every other
//! answer to an allowed origin carries `Access-Control-Allow-Origin` (and
//! the exposed headers). Without a configuration there are no CORS headers
//! at all, so a browser on another origin can read nothing.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;

/// One CORS configuration (API Gateway's or a function URL's), resolved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CorsRules {
    /// Origins allowed, exactly (`*`: any).
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for (`*`: any).
    pub allow_methods: Vec<String>,
    /// Request headers a preflight may ask for, lower case (`*`: any).
    pub allow_headers: Vec<String>,
    /// Response headers a page may read beyond the safelisted ones.
    pub expose_headers: Vec<String>,
    /// How long a browser may keep a preflight's answer, in seconds.
    pub max_age: Option<u64>,
}

impl CorsRules {
    /// The rules of a resolved `CorsConfiguration` or `Cors` block (either
    /// spelling of the keys: `AllowOrigins` or `allowOrigins`); `None` for
    /// no block (null: `AWS::NoValue`).
    pub fn from_template(block: &Json) -> Option<CorsRules> {
        let object = block.as_object()?;
        let list = |name: &str| -> Vec<String> {
            let lower = format!("{}{}", name[..1].to_ascii_lowercase(), &name[1..]);
            object
                .get(name)
                .or_else(|| object.get(&lower))
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                // As given: CloudFormation's !Split trims nothing either.
                .filter_map(|v| v.as_str().map(str::to_owned))
                .filter(|s| !s.is_empty())
                .collect()
        };
        let max_age = object.get("MaxAge").or_else(|| object.get("maxAge"));
        Some(CorsRules {
            allow_origins: list("AllowOrigins"),
            allow_methods: list("AllowMethods")
                .into_iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
            allow_headers: list("AllowHeaders")
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            expose_headers: list("ExposeHeaders"),
            max_age: max_age.and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok())),
        })
    }

    fn allows_origin(&self, origin: &str) -> bool {
        self.allow_origins.iter().any(|o| o == "*" || o == origin)
    }

    /// The headers for an answer to `origin` (empty when it is not allowed).
    fn origin_headers(&self, origin: &str) -> Vec<(&'static str, String)> {
        if !self.allows_origin(origin) {
            return Vec::new();
        }
        // As API Gateway: `*` when any origin is allowed, else the origin itself.
        let allowed = if self.allow_origins.iter().any(|o| o == "*") {
            "*"
        } else {
            origin
        };
        let mut headers = vec![
            ("access-control-allow-origin", allowed.to_owned()),
            ("vary", "origin".into()),
        ];
        if !self.expose_headers.is_empty() {
            headers.push(("access-control-expose-headers", self.expose_headers.join(",")));
        }
        headers
    }
}

/// Whether `method` and `headers` make a CORS preflight.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key("access-control-request-method")
}

/// The gateway's answer to a preflight under `rules`: `204`, with the allow
/// headers only when the origin, the method and every header asked for
/// are allowed.
pub fn preflight(rules: &CorsRules, headers: &HeaderMap) -> Response {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (origin, method) = (
        text("origin"),
        text("access-control-request-method").to_ascii_uppercase(),
    );
    let asked: Vec<String> = text("access-control-request-headers")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let method_ok = rules.allow_methods.iter().any(|m| m == "*" || *m == method);
    let headers_ok = asked
        .iter()
        .all(|h| rules.allow_headers.iter().any(|a| a == "*" || a == h));
    let mut answer = StatusCode::NO_CONTENT.into_response();
    if method_ok && headers_ok {
        let mut allow = rules.origin_headers(origin);
        if !allow.is_empty() {
            allow.push(("access-control-allow-methods", rules.allow_methods.join(",")));
            if !asked.is_empty() {
                allow.push(("access-control-allow-headers", asked.join(",")));
            }
            if let Some(age) = rules.max_age {
                allow.push(("access-control-max-age", age.to_string()));
            }
        }
        append(&mut answer, allow);
    }
    answer
}

/// `answer` with the CORS headers `rules` give the request's origin.
pub fn on_answer(rules: Option<&CorsRules>, request: &HeaderMap, mut answer: Response) -> Response {
    let origin = request.get("origin").and_then(|v| v.to_str().ok());
    if let (Some(rules), Some(origin)) = (rules, origin) {
        append(&mut answer, rules.origin_headers(origin));
    }
    answer
}

fn append(answer: &mut Response, headers: Vec<(&'static str, String)>) {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            answer.headers_mut().insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> CorsRules {
        CorsRules::from_template(&json!({
            "AllowOrigins": ["https://app.example"],
            "AllowMethods": ["GET", "post"],
            "AllowHeaders": ["Authorization", "content-type"],
            "ExposeHeaders": ["location", "retry-after"],
            "MaxAge": 600,
        }))
        .unwrap()
    }

    fn request(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    axum::http::HeaderName::from_static(k),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    fn header(answer: &Response, name: &str) -> Option<String> {
        answer.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn a_preflight_is_allowed_only_for_an_allowed_origin_method_and_headers() {
        let cases: [(&str, &str, &str, bool); 6] = [
            ("https://app.example", "POST", "authorization,content-type", true),
            ("https://app.example", "get", "", true),
            ("https://evil.example", "POST", "authorization", false),
            ("https://app.example", "DELETE", "", false),
            ("https://app.example", "POST", "x-other", false),
            ("", "POST", "", false),
        ];
        for (origin, method, asked, allowed) in cases {
            let mut pairs = vec![("access-control-request-method", method)];
            if !origin.is_empty() {
                pairs.push(("origin", origin));
            }
            if !asked.is_empty() {
                pairs.push(("access-control-request-headers", asked));
            }
            let answer = preflight(&rules(), &request(&pairs));
            assert_eq!(answer.status(), StatusCode::NO_CONTENT);
            let allow_origin = header(&answer, "access-control-allow-origin");
            assert_eq!(allow_origin.is_some(), allowed, "{origin} {method} {asked}");
            if allowed {
                assert_eq!(allow_origin.as_deref(), Some(origin));
                assert_eq!(header(&answer, "access-control-max-age").as_deref(), Some("600"));
            }
        }
    }

    #[test]
    fn answers_carry_the_origin_only_when_it_is_allowed() {
        let ok = on_answer(
            Some(&rules()),
            &request(&[("origin", "https://app.example")]),
            StatusCode::OK.into_response(),
        );
        assert_eq!(
            header(&ok, "access-control-allow-origin").as_deref(),
            Some("https://app.example")
        );
        assert_eq!(
            header(&ok, "access-control-expose-headers").as_deref(),
            Some("location,retry-after")
        );
        for (rules, origin) in [(Some(rules()), "https://evil.example"), (None, "https://app.example")] {
            let answer = on_answer(
                rules.as_ref(),
                &request(&[("origin", origin)]),
                StatusCode::OK.into_response(),
            );
            assert_eq!(header(&answer, "access-control-allow-origin"), None, "{origin}");
        }
    }

    #[test]
    fn no_block_is_no_rules_and_either_spelling_reads() {
        assert_eq!(CorsRules::from_template(&Json::Null), None);
        let lower = CorsRules::from_template(&json!({"allowOrigins": ["*"], "allowMethods": ["GET"]})).unwrap();
        assert!(lower.allows_origin("https://any.example"));
        let any = on_answer(
            Some(&lower),
            &request(&[("origin", "https://any.example")]),
            StatusCode::OK.into_response(),
        );
        assert_eq!(header(&any, "access-control-allow-origin").as_deref(), Some("*"));
        let spaced = CorsRules::from_template(&json!({"AllowOrigins": [" https://a.example"]})).unwrap();
        assert!(!spaced.allows_origin("https://a.example"), "nothing trimmed, as on AWS");
    }
}
