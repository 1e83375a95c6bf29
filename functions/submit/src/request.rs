//! Reading a submit request: its media type, its idempotency key, its JSON,
//! and every check of its fields (job type and input, bounds, chain steps,
//! callback URL), each refusal a problem naming the field.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use longrun_core::access::owns_input;
use longrun_core::api::{FieldError, Problem, SubmitRequest};
use longrun_core::chain::{input_for_validation, ChainLink, ChainStep, MAX_CHAIN_STEPS};
use longrun_core::record::{hash_json, Callback, NewJob};
use longrun_core::webhook::target::{resolve_checked, CallbackUrl, TargetPolicy};
use longrun_core::{Config, JobId};
use longrun_lambda::apigw::{body_bytes, header};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::*;

pub(crate) fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

pub(crate) fn idempotency_key(request: &ApiGatewayV2httpRequest) -> Result<Option<String>, Problem> {
    let Some(raw) = request.headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN && k.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            Problem::malformed(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
            ))
        })?;
    Ok(Some(key.to_owned()))
}

/// The request's JSON body as a `T` (a `what`: "job", "upload"): JSON media
/// type (415), at most `MAX_REQUEST_BYTES` (413), well-formed (400), an
/// object of the right shape (422).
pub(crate) fn json_body<T: DeserializeOwned>(
    deps: &SubmitDeps,
    request: &ApiGatewayV2httpRequest,
    what: &str,
) -> Result<T, Problem> {
    let content_type = header(request, "content-type").unwrap_or("");
    if !is_json_media_type(content_type) {
        return Err(Problem::unsupported_media_type(format!(
            "send the {what} as JSON with Content-Type: application/json (got {content_type:?})"
        )));
    }
    let body = body_bytes(request)?;
    if body.len() > deps.config.max_request_bytes {
        return Err(Problem::too_large(deps.config.max_request_bytes));
    }
    parse_json(&body, what)
}

pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::malformed(format!(
            "the request body is empty; send a JSON {what}"
        )));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Problem::malformed(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(Problem::invalid("the body must be a JSON object", Vec::new()));
    }
    serde_json::from_value(value).map_err(|e| {
        Problem::invalid(
            format!("the body is not a valid {what}"),
            vec![FieldError {
                field: "body".into(),
                message: e.to_string(),
            }],
        )
    })
}

/// Checks the request against the registry and limits; returns the job to create.
pub(crate) fn validate(deps: &SubmitDeps, request: SubmitRequest, id: JobId, owner: &str) -> Result<NewJob, Problem> {
    let Some(handler) = deps.registry.get(&request.job_type) else {
        return Err(Problem::invalid(
            format!(
                "unknown job type {:?}; known types: {}",
                request.job_type,
                deps.registry.job_types().join(", ")
            ),
            vec![FieldError {
                field: "type".into(),
                message: "unknown job type".into(),
            }],
        ));
    };
    let mut errors = handler.validate(&request.input).err().unwrap_or_default();
    for (field, key) in handler.input_keys(&request.input) {
        // Only the caller's own uploads; the same answer whether another
        // owner's key exists or not, so nothing is learnt about it.
        if !owns_input(owner, &key) && !errors.iter().any(|e| e.field == field) {
            errors.push(FieldError {
                field: field.into(),
                message: "must be a key this caller uploaded (POST /uploads answers one)".into(),
            });
        }
    }
    let config = &deps.config;
    let priority = request.priority.unwrap_or_default();
    let queue = config.queue_for_priority(&request.job_type, priority).to_owned();
    let delay_seconds = request.delay_seconds.unwrap_or(0);
    if delay_seconds > config.max_delay_seconds {
        errors.push(FieldError {
            field: "delay_seconds".into(),
            message: format!("must be at most {}", config.max_delay_seconds),
        });
    }
    let run_at = match (&request.run_at, request.delay_seconds) {
        (None, _) => None,
        (Some(_), Some(_)) => {
            errors.push(FieldError {
                field: "run_at".into(),
                message: "give run_at or delay_seconds, not both".into(),
            });
            None
        }
        (Some(text), None) => {
            match longrun_core::time::run_at_within(text, longrun_core::time::now_ms(), config.max_delay_seconds) {
                Ok(at) => Some(at),
                Err(message) => {
                    errors.push(FieldError {
                        field: "run_at".into(),
                        message,
                    });
                    None
                }
            }
        }
    };
    let max_attempts = request.max_attempts.unwrap_or(config.default_max_attempts);
    if !(1..=config.max_attempts_limit).contains(&max_attempts) {
        errors.push(FieldError {
            field: "max_attempts".into(),
            message: format!("must be between 1 and {}", config.max_attempts_limit),
        });
    }
    let timeout_seconds = request.timeout_seconds.unwrap_or(config.default_job_timeout_seconds);
    if !(1..=config.max_job_timeout_seconds).contains(&timeout_seconds) {
        errors.push(FieldError {
            field: "timeout_seconds".into(),
            message: format!("must be between 1 and {}", config.max_job_timeout_seconds),
        });
    }
    errors.extend(validate_steps(deps, &request.then, owner));
    let limit = longrun_core::limits::resolve(
        &config.limits,
        handler.limit(&request.input),
        request.limit.as_deref(),
        owner,
    )
    .unwrap_or_else(|message| {
        errors.push(FieldError {
            field: "limit".into(),
            message,
        });
        None
    });
    if let Some(url) = &request.callback_url {
        if let Err(err) = CallbackUrl::parse(url, &target_policy(config)) {
            errors.push(FieldError {
                field: "callback_url".into(),
                message: err.to_string(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(
            format!("the input is not valid for a {} job", request.job_type),
            errors,
        ));
    }
    let mut hashed = json!({
        "type": request.job_type,
        "input": request.input,
        "priority": priority.as_str(),
        "delay_seconds": delay_seconds,
        "max_attempts": max_attempts,
        "timeout_seconds": timeout_seconds,
    });
    // Only when given, so the hash of a request without them is unchanged.
    if let Some(url) = &request.callback_url {
        hashed["callback_url"] = json!(url);
    }
    if !request.then.is_empty() {
        hashed["then"] = json!(request.then);
    }
    if let Some(name) = &request.limit {
        hashed["limit"] = json!(name);
    }
    // The time asked for, not the delay it comes to (which a replay changes).
    if let Some(at) = run_at {
        hashed["run_at"] = json!(at);
    }
    let request_hash = hash_json(&hashed);
    let chain = (!request.then.is_empty()).then(|| ChainLink::first(&id, request.then));
    Ok(NewJob {
        id,
        owner: owner.to_owned(),
        job_type: request.job_type,
        queue,
        priority,
        input: request.input,
        request_hash,
        max_attempts,
        timeout_seconds,
        delay_seconds,
        callback: request.callback_url.as_deref().map(Callback::new),
        chain,
        limit,
        run_at,
        schedule: None,
    })
}

/// The SSRF guard's policy for callback URLs: `https` to public addresses,
/// unless `WEBHOOK_ALLOW_INSECURE_TARGETS` (test runtimes) says otherwise.
pub(crate) fn target_policy(config: &Config) -> TargetPolicy {
    TargetPolicy {
        allow_insecure: config.webhook_allow_insecure_targets,
    }
}

/// Complaints about the chain's further steps (`then`): at most
/// `MAX_CHAIN_STEPS`, each of a known type with an input valid for it,
/// `{"from_previous": name}` placeholders standing for an input key.
pub(crate) fn validate_steps(deps: &SubmitDeps, steps: &[ChainStep], owner: &str) -> Vec<FieldError> {
    let error = |field: String, message: String| FieldError { field, message };
    if steps.len() > MAX_CHAIN_STEPS {
        return vec![error("then".into(), format!("at most {MAX_CHAIN_STEPS} steps"))];
    }
    let mut errors = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let Some(handler) = deps.registry.get(&step.job_type) else {
            errors.push(error(format!("then[{i}].type"), "unknown job type".into()));
            continue;
        };
        let input = match input_for_validation(&step.input, owner) {
            Ok(input) => input,
            Err(name) => {
                errors.push(error(
                    format!("then[{i}].input"),
                    format!("{{\"from_previous\": {name:?}}} must name a result: [A-Za-z0-9][A-Za-z0-9._-]*"),
                ));
                continue;
            }
        };
        let mut step_errors = handler.validate(&input).err().unwrap_or_default();
        for (field, key) in handler.input_keys(&input) {
            if !owns_input(owner, &key) && !step_errors.iter().any(|e| e.field == field) {
                step_errors.push(error(
                    field.into(),
                    "must be a key this caller uploaded, or a from_previous".into(),
                ));
            }
        }
        errors.extend(
            step_errors
                .into_iter()
                .map(|e| error(format!("then[{i}].{}", e.field), e.message)),
        );
    }
    errors
}

/// The async half of checking a callback: the host resolves only to
/// addresses the SSRF guard allows, and the caller has a webhook secret to
/// sign with. `422` otherwise.
pub(crate) async fn check_callback(deps: &SubmitDeps, job: &NewJob) -> Result<(), Problem> {
    let Some(callback) = &job.callback else { return Ok(()) };
    let invalid = |message: String| {
        Problem::invalid(
            "the callback_url cannot be used",
            vec![FieldError {
                field: "callback_url".into(),
                message,
            }],
        )
    };
    let policy = target_policy(&deps.config);
    let url = CallbackUrl::parse(&callback.url, &policy).map_err(|e| invalid(e.to_string()))?;
    resolve_checked(&url, &policy)
        .await
        .map_err(|e| invalid(e.to_string()))?;
    match deps.store.webhook_secrets(&job.owner).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(invalid(
            "you have no webhook secret to sign deliveries with: POST /webhook-secret first".into(),
        )),
        Err(err) => Err(store_unavailable(err)),
    }
}
