//! `sleep`: waits N seconds with progress ticks, for tests and demos; only
//! registered when `ENABLE_SLEEP_JOB` is set.
//!
//! Input: `{"seconds": 3, "fail": "retryable"|"permanent"|"panic",
//! "fail_attempts": 2}`. With `fail`, attempts up to `fail_attempts` (all,
//! when absent) fail that way after sleeping; later attempts succeed. It
//! checkpoints the time slept, so an attempt after a crash resumes where the
//! last checkpoint left off. Writes `sleep.json`.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use longrun_core::api::FieldError;
use longrun_core::job_types::field_error;
use longrun_core::job_types::{JobContext, TypedJob};
use longrun_core::record::{JobError, ResultObject};

const MAX_SECONDS: f64 = 900.0;
const TICK: Duration = Duration::from_millis(100);

/// The `sleep` job type.
pub struct SleepJob;

/// How a run fails on request.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum FailureMode {
    Retryable,
    Permanent,
    Panic,
}

/// What a `sleep` run saves: the time slept so far.
#[derive(Debug, Serialize, Deserialize)]
pub struct SleepCheckpoint {
    slept_ms: u64,
}

/// The input of a `sleep` job (see the module docs).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SleepInput {
    /// How long to sleep, in seconds.
    seconds: f64,
    /// Fail instead of succeeding, and how.
    #[serde(default)]
    fail: Option<FailureMode>,
    /// Fail only the first this many attempts.
    #[serde(default)]
    fail_attempts: Option<u32>,
}

#[async_trait]
impl TypedJob for SleepJob {
    type Input = SleepInput;
    type Checkpoint = SleepCheckpoint;

    fn job_type(&self) -> &'static str {
        "sleep"
    }

    fn check(&self, input: &SleepInput) -> Result<(), Vec<FieldError>> {
        if !(0.0..=MAX_SECONDS).contains(&input.seconds) {
            return Err(vec![field_error(
                "input.seconds",
                format!("must be between 0 and {MAX_SECONDS}"),
            )]);
        }
        Ok(())
    }

    async fn run(
        &self,
        ctx: &JobContext,
        input: SleepInput,
        resume: Option<SleepCheckpoint>,
    ) -> Result<Vec<ResultObject>, JobError> {
        let total = Duration::from_secs_f64(input.seconds.clamp(0.0, MAX_SECONDS));
        let resumed_ms = resume.map_or(0, |c| c.slept_ms);
        let mut slept = Duration::from_millis(resumed_ms).min(total);
        while slept < total {
            let step = TICK.min(total - slept);
            tokio::time::sleep(step).await;
            slept += step;
            let percent = (slept.as_secs_f64() / total.as_secs_f64() * 100.0) as u8;
            let message = format!("slept {:.1}s of {:.1}s", slept.as_secs_f64(), total.as_secs_f64());
            let saved = SleepCheckpoint {
                slept_ms: slept.as_millis() as u64,
            };
            ctx.checkpoint(percent.min(99), message, &saved).await?;
        }
        let failing_attempt = input.fail_attempts.is_none_or(|n| ctx.attempt() <= n);
        match input.fail {
            Some(FailureMode::Retryable) if failing_attempt => {
                return Err(JobError::retryable(
                    "sleep_failed",
                    format!("asked to fail attempt {}", ctx.attempt()),
                ))
            }
            Some(FailureMode::Permanent) if failing_attempt => {
                return Err(JobError::permanent("sleep_failed", "asked to fail permanently"))
            }
            Some(FailureMode::Panic) if failing_attempt => panic!("sleep job asked to panic"),
            _ => {}
        }
        let body = json!({
            "slept_ms": total.as_millis() as u64,
            "resumed_from_ms": resumed_ms,
            "attempt": ctx.attempt(),
        });
        let result = ctx
            .put_result("sleep.json", Bytes::from(body.to_string()), "application/json")
            .await?;
        Ok(vec![result])
    }
}

#[cfg(test)]
mod tests {
    use longrun_core::ports::JobLifecycle;
    // Through `JobHandler`, from JSON, as submit and the worker call it.
    use serde_json::{json, Value};

    use super::SleepJob;
    use longrun_core::job_types::testing::harness;
    use longrun_core::job_types::JobHandler;

    use longrun_core::record::codes;

    #[test]
    fn validation_bounds_the_duration() {
        assert!(SleepJob.validate(&json!({"seconds": 1.5})).is_ok());
        assert!(SleepJob.validate(&json!({"seconds": -1})).is_err());
        assert!(SleepJob.validate(&json!({"seconds": 901})).is_err());
        assert!(SleepJob.validate(&json!({"seconds": 1, "fail": "sometimes"})).is_err());
        assert!(SleepJob.validate(&json!({"secs": 1})).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn sleeps_checkpoints_and_resumes() {
        let input = json!({"seconds": 1});
        let h = harness(input.clone(), Some(json!({"slept_ms": 600}))).await;
        let results = SleepJob.run(&h.ctx, &input).await.unwrap();
        let body: Value = serde_json::from_slice(&h.objects.object(&results[0].key).unwrap().0).unwrap();
        assert_eq!(body["resumed_from_ms"], 600);
        let job = h.store.get(h.ctx.job_id()).await.unwrap().unwrap();
        assert_eq!(job.checkpoint, Some(json!({"slept_ms": 1000})));
    }

    #[tokio::test(start_paused = true)]
    async fn a_checkpoint_that_no_longer_parses_fails_the_job_instead_of_starting_over() {
        let input = json!({"seconds": 1});
        let h = harness(input.clone(), Some(json!({"slept": "600ms"}))).await;
        let err = SleepJob.run(&h.ctx, &input).await.unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), (codes::INVALID_CHECKPOINT, false));
        assert!(h.objects.keys().is_empty(), "nothing written: {:?}", h.objects.keys());
    }

    #[tokio::test(start_paused = true)]
    async fn fails_as_asked_on_early_attempts_only() {
        let input = json!({"seconds": 0, "fail": "retryable", "fail_attempts": 1});
        let h = harness(input.clone(), None).await;
        let err = SleepJob.run(&h.ctx, &input).await.unwrap_err();
        assert!(err.retryable);

        let later = json!({"seconds": 0, "fail": "permanent", "fail_attempts": 0});
        assert!(
            SleepJob.run(&h.ctx, &later).await.is_ok(),
            "attempt 1 > fail_attempts 0"
        );
    }
}
