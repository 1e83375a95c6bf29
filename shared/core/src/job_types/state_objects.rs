//! State too big for the job record: a run writes it as an object under its
//! own result prefix and names the key in its (small) checkpoint; a later
//! run of the same job reads it back. The record stays small, so every
//! status read of it stays cheap.

use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::JobContext;
use crate::ports::ObjectError;
use crate::record::{codes, JobError};

impl JobContext {
    /// Writes `body` (JSON) as `results/<job_id>/<run>/state/<name>` under
    /// this run's lease, as [`put_result`](Self::put_result) writes a
    /// result (it is not one: the job's results are what its end names),
    /// and answers its key, for the checkpoint to name.
    pub async fn put_state(&self, name: &str, body: Bytes) -> Result<String, JobError> {
        let written = self
            .put_result(&format!("state/{name}"), body, "application/json")
            .await?;
        Ok(written.key)
    }

    /// Reads back a state object a run of this job wrote
    /// ([`put_state`](Self::put_state)), of at most `max_bytes`: any key
    /// outside this job's own result prefix is refused unread.
    pub async fn read_state(&self, key: &str, max_bytes: u64) -> Result<Bytes, JobError> {
        let invalid = |why: String| JobError::permanent(codes::INVALID_CHECKPOINT, why);
        if !key.starts_with(&format!("results/{}/", self.job_id())) || key.contains("/../") {
            return Err(invalid(format!(
                "the checkpoint names {key:?}, not a state object of this job"
            )));
        }
        let object = self.services.objects.open(key).await.map_err(|err| match err {
            ObjectError::NotFound(_) => invalid(format!("the checkpoint's state object {key} is gone")),
            other => JobError::retryable(codes::STORAGE, other.to_string()),
        })?;
        let mut body = Vec::new();
        object
            .body
            .take(max_bytes + 1)
            .read_to_end(&mut body)
            .await
            .map_err(|err| JobError::retryable(codes::STORAGE, format!("reading the state object failed: {err}")))?;
        if body.len() as u64 > max_bytes {
            return Err(invalid(format!(
                "the state object {key} is larger than {max_bytes} bytes"
            )));
        }
        Ok(Bytes::from(body))
    }
}

#[cfg(test)]
mod tests {
    use crate::job_types::testing::harness;
    use crate::record::codes;
    use serde_json::json;

    #[tokio::test]
    async fn state_goes_under_the_run_and_only_this_jobs_comes_back() {
        let h = harness(json!({}), None).await;
        let key = h.ctx.put_state("groups.json", "[1,2]".into()).await.unwrap();
        assert_eq!(key, h.ctx.result_key("state/groups.json"));
        assert_eq!(h.ctx.read_state(&key, 5).await.unwrap(), "[1,2]");
        let too_big = h.ctx.read_state(&key, 4).await.unwrap_err();
        assert_eq!(too_big.code, codes::INVALID_CHECKPOINT);
        let other = harness(json!({}), None).await;
        let foreign = other.ctx.put_state("groups.json", "[]".into()).await.unwrap();
        for key in [
            foreign.as_str(),
            "inputs/x/y.csv",
            &format!("results/{}/../x", h.ctx.job_id()),
        ] {
            let refused = h.ctx.read_state(key, 100).await.unwrap_err();
            assert_eq!(
                (refused.code.as_str(), refused.retryable),
                (codes::INVALID_CHECKPOINT, false),
                "{key}"
            );
        }
        let gone = h
            .ctx
            .read_state(&h.ctx.result_key("state/none.json"), 100)
            .await
            .unwrap_err();
        assert_eq!(gone.code, codes::INVALID_CHECKPOINT);
    }
}
