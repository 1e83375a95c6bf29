//! Who is calling: the owner name a request's authorizer context makes.
//!
//! Owners are namespaced by where the identity came from, so that two
//! sources can never name the same owner (a JWT `sub` cannot pose as an IAM
//! principal, an assumed-role session name chosen by its caller cannot pose
//! as anyone):
//!
//! | source | owner |
//! |---|---|
//! | JWT authorizer | `jwt:<iss>\|<sub>` |
//! | Lambda authorizer (`owner`, else `sub`) | `lambda:<value>` |
//! | IAM, Cognito identity pool caller | `iam:cognito\|<identity pool id>\|<identity id>` |
//! | IAM, any other principal | `iam:<account>\|<principal id>` (the role's or user's unique id; never the session name) |
//! | none, with `ALLOW_ANONYMOUS` | `anonymous` |
//!
//! `LEGACY_OWNER_NAMES=true` keeps the names of before (the bare `sub`, the
//! Lambda authorizer's value, the caller ARN) for a stack whose records were
//! made with them: those sources then share one namespace again.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;

use longrun_core::api::Problem;
use longrun_core::config::Config;

/// The one owner every caller without an identity shares, when
/// `ALLOW_ANONYMOUS` lets such callers in at all.
pub const ANONYMOUS_OWNER: &str = "anonymous";

/// The owner a JWT with issuer `iss` and subject `sub` makes.
pub fn jwt_owner(iss: &str, sub: &str) -> String {
    format!("jwt:{iss}|{sub}")
}

/// The request's owner, namespaced by source (see the module docs), or the
/// names of before when `legacy` (`LEGACY_OWNER_NAMES`). `None` when the
/// authorizer context has no usable identity (an empty value is none).
pub fn identity(request: &ApiGatewayV2httpRequest, legacy: bool) -> Option<String> {
    let authorizer = request.request_context.authorizer.as_ref()?;
    let usable = |v: &str| !v.trim().is_empty();
    if let Some(claims) = authorizer.jwt.as_ref().map(|jwt| &jwt.claims) {
        if let Some(sub) = claims.get("sub").filter(|s| usable(s)) {
            let iss = claims.get("iss").map(String::as_str).unwrap_or("");
            return Some(if legacy { sub.clone() } else { jwt_owner(iss, sub) });
        }
    }
    let lambda = ["owner", "sub"].iter().find_map(|name| {
        authorizer
            .fields
            .get(*name)
            .and_then(|v| v.as_str())
            .filter(|v| usable(v))
    });
    if let Some(value) = lambda {
        return Some(if legacy {
            value.to_owned()
        } else {
            format!("lambda:{value}")
        });
    }
    let iam = authorizer.iam.as_ref()?;
    if legacy {
        return iam.user_arn.clone().filter(|arn| usable(arn));
    }
    if let Some(cognito) = &iam.cognito_identity {
        if let (Some(pool), Some(id)) = (&cognito.identity_pool_id, &cognito.identity_id) {
            if usable(pool) && usable(id) {
                return Some(format!("iam:cognito|{pool}|{id}"));
            }
        }
    }
    // `user_id` is `<unique id>` for a user and `<role id>:<session name>`
    // for an assumed role; the session name is the caller's own choice.
    let principal = iam.user_id.as_deref()?.split(':').next().filter(|p| usable(p))?;
    let account = iam.account_id.as_deref().unwrap_or("");
    Some(format!("iam:{account}|{principal}"))
}

/// Who is calling: the request's [`identity`], or — only when
/// `ALLOW_ANONYMOUS` — the shared [`ANONYMOUS_OWNER`]. Otherwise `401`: a
/// route that lost its authorizer must not fall back to an owner everyone
/// shares (defence in depth behind API Gateway's own check).
pub fn caller(request: &ApiGatewayV2httpRequest, config: &Config) -> Result<String, Problem> {
    match identity(request, config.legacy_owner_names) {
        Some(owner) => Ok(owner),
        None if config.allow_anonymous => Ok(ANONYMOUS_OWNER.to_owned()),
        None => Err(Problem::unauthorized(
            "this API needs a caller identity: send Authorization: Bearer <token>",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apigw::problem_response;
    use serde_json::json;

    fn with_authorizer(authorizer: Option<serde_json::Value>) -> ApiGatewayV2httpRequest {
        let mut event = json!({
            "version": "2.0",
            "routeKey": "GET /jobs",
            "rawPath": "/jobs",
            "rawQueryString": "",
            "headers": {},
            "requestContext": {"http": {"method": "GET", "path": "/jobs"}, "timeEpoch": 0},
            "isBase64Encoded": false
        });
        if let Some(authorizer) = authorizer {
            event["requestContext"]["authorizer"] = authorizer;
        }
        serde_json::from_value(event).unwrap()
    }

    fn jwt(claims: serde_json::Value) -> ApiGatewayV2httpRequest {
        with_authorizer(Some(json!({"jwt": {"claims": claims, "scopes": null}})))
    }

    fn iam(description: serde_json::Value) -> ApiGatewayV2httpRequest {
        with_authorizer(Some(json!({ "iam": description })))
    }

    #[test]
    fn each_source_names_owners_in_its_own_namespace() {
        let cases = [
            (
                jwt(json!({"iss": "https://idp.example.com", "sub": "alice"})),
                "jwt:https://idp.example.com|alice",
                "alice",
            ),
            (jwt(json!({"sub": "alice"})), "jwt:|alice", "alice"),
            (
                with_authorizer(Some(json!({"lambda": {"owner": "alice"}}))),
                "lambda:alice",
                "alice",
            ),
            (
                with_authorizer(Some(json!({"lambda": {"sub": "bob"}}))),
                "lambda:bob",
                "bob",
            ),
            (
                iam(json!({"accountId": "123456789012", "userId": "AIDAUSER",
                           "userArn": "arn:aws:iam::123456789012:user/carol"})),
                "iam:123456789012|AIDAUSER",
                "arn:aws:iam::123456789012:user/carol",
            ),
            (
                iam(json!({"accountId": "123456789012", "userId": "AROAROLE:alice",
                           "userArn": "arn:aws:sts::123456789012:assumed-role/app/alice"})),
                "iam:123456789012|AROAROLE",
                "arn:aws:sts::123456789012:assumed-role/app/alice",
            ),
            (
                iam(
                    json!({"accountId": "123456789012", "userId": "AROAPOOL:CognitoIdentityCredentials",
                           "cognitoIdentity": {"amr": ["authenticated"], "identityId": "us-east-1:abc",
                                               "identityPoolId": "us-east-1:pool"}}),
                ),
                "iam:cognito|us-east-1:pool|us-east-1:abc",
                "",
            ),
        ];
        for (request, namespaced, legacy) in &cases {
            assert_eq!(identity(request, false).as_deref(), Some(*namespaced));
            assert_eq!(identity(request, true).unwrap_or_default(), *legacy);
        }
    }

    #[test]
    fn a_name_chosen_in_one_source_cannot_reach_an_owner_of_another() {
        // The same text through every source: four different owners.
        let arn = "arn:aws:sts::123456789012:assumed-role/app/alice";
        let owners = [
            identity(&jwt(json!({"iss": "https://idp.example.com", "sub": arn})), false),
            identity(&with_authorizer(Some(json!({"lambda": {"owner": arn}}))), false),
            identity(
                &iam(json!({"accountId": "123456789012", "userId": "AROAROLE:alice", "userArn": arn})),
                false,
            ),
            Some(ANONYMOUS_OWNER.to_owned()),
        ];
        let distinct: std::collections::BTreeSet<_> = owners.iter().flatten().collect();
        assert_eq!(distinct.len(), owners.len(), "{owners:?}");
        // Two sessions of one role are one owner, whatever their names.
        let session = |name: &str| {
            identity(
                &iam(json!({"accountId": "123456789012", "userId": format!("AROAROLE:{name}")})),
                false,
            )
        };
        assert_eq!(session("alice"), session("mallory"));
    }

    #[test]
    fn no_usable_identity_is_401_unless_anonymous_callers_are_allowed() {
        let no_identity = [
            with_authorizer(None),
            jwt(json!({"sub": ""})),
            jwt(json!({"email": "a@example.com"})),
            with_authorizer(Some(json!({"lambda": {"owner": "  "}}))),
            iam(json!({"accessKey": "AKIA"})),
            iam(json!({"userId": ":session"})),
        ];
        let closed = longrun_core::fixtures::config(&[]);
        let open = longrun_core::fixtures::config(&[("ALLOW_ANONYMOUS", "true")]);
        for request in &no_identity {
            assert_eq!(
                identity(request, false),
                None,
                "{:?}",
                request.request_context.authorizer
            );
            let refused = caller(request, &closed).unwrap_err();
            assert_eq!(refused.status, 401);
            let response = problem_response(&refused);
            assert_eq!(response.headers["www-authenticate"], "Bearer");
            assert_eq!(response.headers["content-type"], "application/problem+json");
            assert_eq!(caller(request, &open).unwrap(), ANONYMOUS_OWNER);
        }
        let alice = jwt(json!({"iss": "https://idp.example.com", "sub": "alice"}));
        assert_eq!(
            caller(&alice, &open).unwrap(),
            "jwt:https://idp.example.com|alice",
            "an identity wins over anonymous"
        );
        let legacy = longrun_core::fixtures::config(&[("LEGACY_OWNER_NAMES", "true")]);
        assert_eq!(caller(&alice, &legacy).unwrap(), "alice");
    }
}
