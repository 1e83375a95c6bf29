//! `POST /webhook-secret`: makes the caller a new webhook signing secret and
//! answers it, this once (`201`, `Cache-Control: no-store`). Deliveries are
//! signed with it from then on, and also with the secret it replaced for
//! `WEBHOOK_SECRET_OVERLAP_SECONDS`, so a receiver can switch without
//! missing one. No request body. The secret is never logged.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use longrun_core::api::{Problem, WebhookSecretView};
use longrun_core::time::{now_ms, rfc3339};
use longrun_core::webhook::signature::WebhookSecret;
use longrun_core::webhook::WebhookSecrets;
use longrun_lambda::apigw::{json_response, problem_response};
use longrun_lambda::identity::caller;

use crate::{store_unavailable, SubmitDeps};

/// The route this module answers.
pub(crate) const ROUTE: &str = "POST /webhook-secret";

/// Handles `POST /webhook-secret`: `201` with the new secret, or a problem.
pub(crate) async fn handle(deps: &SubmitDeps, request: &ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
    match rotate(deps, request).await {
        Ok(view) => json_response(201, &view, &[("cache-control", "no-store".to_owned())]),
        Err(problem) => problem_response(&problem),
    }
}

/// Replaces the caller's secret (conditional on the one read, so two
/// rotations at once cannot both think theirs is current).
pub(crate) async fn rotate(deps: &SubmitDeps, request: &ApiGatewayV2httpRequest) -> Result<WebhookSecretView, Problem> {
    let owner = caller(request, &deps.config)?;
    let overlap_ms = deps.config.webhook_secret_overlap_seconds * 1000;
    for _ in 0..3 {
        let old = deps.store.webhook_secrets(&owner).await.map_err(store_unavailable)?;
        let now = now_ms();
        let new = WebhookSecrets::rotated(
            old.as_ref(),
            WebhookSecret::generate().to_whsec_string(),
            now,
            overlap_ms,
        );
        let expected = old.as_ref().map(|o| o.created_at);
        if deps
            .store
            .replace_webhook_secrets(&owner, expected, &new)
            .await
            .map_err(store_unavailable)?
        {
            tracing::info!(rotated = old.is_some(), "new webhook secret");
            return Ok(WebhookSecretView {
                created_at: rfc3339(new.created_at),
                previous_valid_until: new.previous_valid_until.map(rfc3339),
                secret: new.current,
            });
        }
    }
    Err(Problem::conflict(
        "the webhook secret is being rotated by another request; retry",
    ))
}
