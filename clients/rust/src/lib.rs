//! `longrun-client`: the longrun job API from Rust.
//!
//! The request and view types are the API's own (`longrun-types`), not
//! copies. Every call answers a typed value or a [`ClientError`] carrying
//! the API's problem details. `429` and `503` answers are retried after
//! their `Retry-After` (bounded by [`RetryPolicy`]), and so are connection
//! failures of calls that are safe to repeat. A submit always carries an
//! `Idempotency-Key` (a fresh one unless the caller gives one), so a retried
//! submit never creates two jobs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), longrun_client::ClientError> {
//! use longrun_client::Client;
//! let client = Client::new("http://127.0.0.1:3000", "alice")?;
//! let key = client.upload_file("sales.csv".as_ref()).await?;
//! let request = serde_json::from_value(serde_json::json!({
//!     "type": "report",
//!     "input": {"source": {"key": key}, "group_by": ["region"], "values": ["amount"]},
//! })).unwrap();
//! let job = client.submit(&request, None).await?;
//! let done = client.wait(&job.id, |view| println!("{}%", view.progress)).await?;
//! client.download_results(&done, "out".as_ref()).await?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use longrun_types::api::{JobList, JobView, Problem, SubmitRequest, UploadRequest, UploadTicket};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;

pub use longrun_types::api;
pub use longrun_types::schedule;

mod schedules;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with a problem (`application/problem+json`).
    #[error("{0}")]
    Problem(Box<Problem>),
    /// The API could not be reached, or the connection broke.
    #[error("could not reach the API: {0}")]
    Connection(String),
    /// The API answered something that is not what the contract says.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    /// A local file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl ClientError {
    /// The problem's HTTP status, when the API answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Problem(problem) => Some(problem.status),
            _ => None,
        }
    }
}

/// How often and how long calls are retried on `429`/`503` and on
/// connection failures of repeatable calls.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub max_attempts: u32,
    /// The wait when an answer gives no `Retry-After` (doubled each time).
    pub base_wait: Duration,
    /// The longest wait, whatever `Retry-After` says.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_wait: Duration::from_millis(500),
            max_wait: Duration::from_secs(30),
        }
    }
}

/// The longest an upload or a download may take (a 100 MiB input on a slow
/// link); API calls keep the client's own, shorter timeout.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(3600);

/// The longest long poll the API allows, in seconds.
const LONG_POLL_SECONDS: u64 = 20;

/// A client of one longrun API as one caller.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    retry: RetryPolicy,
}

impl Client {
    /// A client of the API at `base_url` (e.g. the stack's `ApiUrl`, or
    /// `http://127.0.0.1:3000` for `make dev`) sending `token` as a bearer
    /// token (a JWT on AWS; locally the caller's name). An empty token
    /// sends none.
    pub fn new(base_url: &str, token: &str) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(LONG_POLL_SECONDS + 30))
            .build()
            .map_err(|e| ClientError::Connection(e.to_string()))?;
        Ok(Client {
            base: base_url.trim_end_matches('/').to_owned(),
            token: (!token.is_empty()).then(|| token.to_owned()),
            http,
            retry: RetryPolicy::default(),
        })
    }

    /// The same client with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends the request `build` makes, again after `Retry-After` on `429`
    /// and `503` and (when `repeatable`) after a connection failure.
    async fn send(&self, repeatable: bool, build: impl Fn() -> RequestBuilder) -> Result<Response, ClientError> {
        let mut attempt = 1;
        loop {
            let wait = match build().send().await {
                Ok(response)
                    if matches!(
                        response.status(),
                        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                    ) =>
                {
                    if attempt >= self.retry.max_attempts {
                        return Err(problem_of(response).await);
                    }
                    retry_after(&response).unwrap_or(self.backoff(attempt))
                }
                Ok(response) if response.status().is_client_error() || response.status().is_server_error() => {
                    return Err(problem_of(response).await)
                }
                Ok(response) => return Ok(response),
                Err(err)
                    if repeatable && attempt < self.retry.max_attempts && (err.is_connect() || err.is_timeout()) =>
                {
                    self.backoff(attempt)
                }
                Err(err) => return Err(ClientError::Connection(err.to_string())),
            };
            tracing::info!(attempt, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait.min(self.retry.max_wait)).await;
            attempt += 1;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.retry.base_wait.saturating_mul(1 << (attempt - 1).min(10))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        repeatable: bool,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = self.send(repeatable, build).await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Unexpected(format!("the answer is not the JSON expected: {e}")))
    }

    /// `POST /jobs`. Without `idempotency_key` a fresh one is made, so the
    /// retries this call makes (and any the caller makes with the same key)
    /// reach one job. A replay of an accepted job answers that job.
    pub async fn submit(&self, request: &SubmitRequest, idempotency_key: Option<&str>) -> Result<JobView, ClientError> {
        let key = idempotency_key
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        self.json(true, || {
            self.request(Method::POST, "/jobs")
                .header("idempotency-key", &key)
                .json(request)
        })
        .await
    }

    /// `GET /jobs/{id}`, waiting up to `wait_seconds` (at most 20) for the job to end.
    pub async fn get(&self, id: &str, wait_seconds: u64) -> Result<JobView, ClientError> {
        let path = format!("/jobs/{id}?wait={}", wait_seconds.min(LONG_POLL_SECONDS));
        self.json(true, || self.request(Method::GET, &path)).await
    }

    /// Long-polls until the job ends; `on_change` sees every view whose
    /// status, progress or message differs from the last one. The terminal view.
    pub async fn wait(&self, id: &str, mut on_change: impl FnMut(&JobView)) -> Result<JobView, ClientError> {
        let mut last: Option<(String, u8, Option<String>)> = None;
        loop {
            // Short polls while running, so progress shows; the long poll returns at the end anyway.
            let view = self.get(id, 2).await?;
            let seen = (view.status.clone(), view.progress, view.message.clone());
            if last.as_ref() != Some(&seen) {
                on_change(&view);
                last = Some(seen);
            }
            if !matches!(view.status.as_str(), "QUEUED" | "RUNNING") {
                return Ok(view);
            }
        }
    }

    /// `GET /jobs`: one page of the caller's jobs, newest first.
    pub async fn list(
        &self,
        status: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<JobList, ClientError> {
        let mut query = Vec::new();
        if let Some(status) = status {
            query.push(("status", status.to_owned()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        self.json(true, || self.request(Method::GET, "/jobs").query(&query))
            .await
    }

    /// `POST /jobs/{id}/cancel`. Not repeated after a connection failure
    /// (a cancel that got through answers `409` the second time); `429` and
    /// `503` are, as the API refused those before acting.
    pub async fn cancel(&self, id: &str) -> Result<JobView, ClientError> {
        let path = format!("/jobs/{id}/cancel");
        self.json(false, || self.request(Method::POST, &path)).await
    }

    /// Uploads a local file as a job input (`POST /uploads`, then the
    /// presigned PUT, streamed from disk): the key a job names it by.
    pub async fn upload_file(&self, path: &Path) -> Result<String, ClientError> {
        let file_error = |e: std::io::Error| ClientError::File {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let bytes = tokio::fs::metadata(path).await.map_err(file_error)?.len();
        let filename = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(upload_filename)
            .filter(|n| !n.is_empty());
        let wanted = UploadRequest { bytes, filename };
        let ticket: UploadTicket = self
            .json(true, || self.request(Method::POST, "/uploads").json(&wanted))
            .await?;
        let file = tokio::fs::File::open(path).await.map_err(file_error)?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let mut put = self.http.put(&ticket.upload_url).timeout(TRANSFER_TIMEOUT).body(body);
        for (name, value) in &ticket.headers {
            put = put.header(name, value);
        }
        let response = put.send().await.map_err(|e| ClientError::Connection(e.to_string()))?;
        if !response.status().is_success() {
            return Err(ClientError::Unexpected(format!(
                "the upload PUT answered {}",
                response.status()
            )));
        }
        Ok(ticket.key)
    }

    /// Downloads every result of a SUCCEEDED job's view into `dir` (made if
    /// missing), streamed to disk; the files written.
    pub async fn download_results(&self, view: &JobView, dir: &Path) -> Result<Vec<PathBuf>, ClientError> {
        let file_error = |path: &Path, e: std::io::Error| ClientError::File {
            path: path.to_owned(),
            message: e.to_string(),
        };
        tokio::fs::create_dir_all(dir).await.map_err(|e| file_error(dir, e))?;
        let mut written = Vec::new();
        for result in &view.results {
            // Result names are the job type's own plain names; keep only the last segment.
            let name = Path::new(&result.name)
                .file_name()
                .map(PathBuf::from)
                .unwrap_or_else(|| "result".into());
            let path = dir.join(name);
            let mut response = self
                .http
                .get(&result.url)
                .timeout(TRANSFER_TIMEOUT)
                .send()
                .await
                .map_err(|e| ClientError::Connection(e.to_string()))?;
            if !response.status().is_success() {
                return Err(ClientError::Unexpected(format!(
                    "downloading {} answered {}",
                    result.name,
                    response.status()
                )));
            }
            let mut file = tokio::fs::File::create(&path).await.map_err(|e| file_error(&path, e))?;
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| ClientError::Connection(e.to_string()))?
            {
                file.write_all(&chunk).await.map_err(|e| file_error(&path, e))?;
            }
            file.flush().await.map_err(|e| file_error(&path, e))?;
            written.push(path);
        }
        Ok(written)
    }
}

/// A file name as `POST /uploads` accepts it: `[A-Za-z0-9][A-Za-z0-9._-]*`,
/// at most 128 bytes (other characters become `_`).
fn upload_filename(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    cleaned
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// `Retry-After` in seconds, when the answer has one.
fn retry_after(response: &Response) -> Option<Duration> {
    let seconds: u64 = response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// The problem an error answer carries (or one made from its status when
/// it carries none, e.g. API Gateway's own `{"message": …}`).
async fn problem_of(response: Response) -> ClientError {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    match serde_json::from_str::<Problem>(&text) {
        Ok(problem) => ClientError::Problem(Box::new(problem)),
        Err(_) => ClientError::Problem(Box::new(Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: text.chars().take(500).collect(),
            errors: Vec::new(),
            retry_after: None,
        })),
    }
}

#[cfg(test)]
mod tests;
