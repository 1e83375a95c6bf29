//! `POST /uploads`: a presigned S3 PUT for one input of the caller's, under
//! the caller's own prefix (`inputs/<owner hash>/<uuid>/<filename>`), for
//! exactly the size declared (at most `MAX_UPLOAD_BYTES`; S3 refuses another
//! length, the `Content-Length` header is signed) and for a short while
//! (`UPLOAD_URL_TTL_SECONDS`). A job then names the key as its input; submit
//! and the worker accept only keys under the caller's own prefix.

use std::collections::BTreeMap;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use longrun_core::access::{input_prefix, is_plain_segment};
use longrun_core::api::{over_per_minute_limit, FieldError, Problem, UploadRequest, UploadTicket};
use longrun_core::ports::UPLOAD_CONTENT_TYPE;
use longrun_core::time::{now_ms, rfc3339};
use longrun_lambda::apigw::{json_response, problem_response};
use longrun_lambda::identity::caller;

use crate::{json_body, SubmitDeps};

/// The route this module answers.
pub(crate) const ROUTE: &str = "POST /uploads";
/// The file name of an upload that gives none.
const DEFAULT_FILENAME: &str = "input";
/// Seconds a caller is told to wait when presigning fails.
const UNAVAILABLE_RETRY_SECONDS: u32 = 1;

/// Handles `POST /uploads`: `201` with the ticket, or a problem.
pub(crate) async fn handle(deps: &SubmitDeps, request: &ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
    match upload(deps, request).await {
        Ok(ticket) => json_response(201, &ticket, &[("cache-control", "no-store".to_owned())]),
        Err(problem) => {
            tracing::info!(status = problem.status, detail = %problem.detail, "upload refused");
            problem_response(&problem)
        }
    }
}

/// Checks the request and presigns the PUT.
pub(crate) async fn upload(deps: &SubmitDeps, request: &ApiGatewayV2httpRequest) -> Result<UploadTicket, Problem> {
    let owner = caller(request, &deps.config)?;
    let wanted: UploadRequest = json_body(deps, request, "upload")?;
    let mut errors = Vec::new();
    let max = deps.config.max_upload_bytes;
    if !(1..=max).contains(&wanted.bytes) {
        errors.push(FieldError {
            field: "bytes".into(),
            message: format!("must be between 1 and {max} (MAX_UPLOAD_BYTES)"),
        });
    }
    let filename = wanted.filename.unwrap_or_else(|| DEFAULT_FILENAME.to_owned());
    if !is_plain_segment(&filename) {
        errors.push(FieldError {
            field: "filename".into(),
            message: "must be 1 to 128 of A-Z a-z 0-9 . _ -, starting with a letter or digit".into(),
        });
    }
    if !errors.is_empty() {
        return Err(Problem::invalid("the upload is not valid", errors));
    }
    let limit = deps.config.upload_urls_per_minute;
    let over = over_per_minute_limit(
        deps.store.as_ref(),
        &owner,
        "upload-urls",
        "upload URLs",
        limit,
        now_ms(),
    )
    .await
    .map_err(crate::store_unavailable)?;
    if let Some(refused) = over {
        return Err(refused);
    }
    let key = format!("{}{}/{filename}", input_prefix(&owner), uuid::Uuid::new_v4());
    let ttl = deps.config.upload_url_ttl;
    let upload_url = deps.objects.presign_put(&key, wanted.bytes, ttl).await.map_err(|err| {
        tracing::error!(error = %err, "presigning an upload failed");
        Problem::unavailable("uploads are unavailable; retry shortly", UNAVAILABLE_RETRY_SECONDS)
    })?;
    tracing::info!(%key, bytes = wanted.bytes, "upload URL issued");
    Ok(UploadTicket {
        key,
        upload_url,
        method: "PUT".into(),
        headers: BTreeMap::from([
            ("content-type".to_owned(), UPLOAD_CONTENT_TYPE.to_owned()),
            ("content-length".to_owned(), wanted.bytes.to_string()),
        ]),
        expires_at: rfc3339(now_ms() + ttl.as_millis() as i64),
        bytes: wanted.bytes,
    })
}
