//! Harness for the end-to-end tests: talks to a running longrun stack over
//! HTTP, and to its bucket, queues and table through the AWS SDK.
//!
//! [`LocalRuntime`] starts extra local runtimes of its own (to kill them,
//! or with injected faults); those tests need `LONGRUN_LOCAL_BIN` and run
//! only against the emulator.
//!
//! Endpoint-agnostic: `LONGRUN_API_URL` is the API's base URL (the local
//! runtime, a LocalStack deployment or a real one); the SDK finds the
//! resources' endpoint the standard way (`AWS_ENDPOINT_URL` for an emulator,
//! and a service's own `AWS_ENDPOINT_URL_DYNAMODB`, `…_SQS`, `…_S3` before it).
//! Resource names come from `LONGRUN_JOBS_BUCKET`, `LONGRUN_JOBS_TABLE`,
//! `LONGRUN_FAST_QUEUE_URL` and `LONGRUN_SLOW_QUEUE_URL` when set (a
//! deployed stack's outputs), otherwise from the local runtime's
//! `/_local/resources`.

pub mod identity;
mod runtime;

pub use runtime::LocalRuntime;

pub use identity::{owner_of, token_for};
use longrun_core::ports::QuotaSlots;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::Value;

/// A running stack under test.
pub struct Stack {
    pub api: String,
    pub http: reqwest::Client,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub bucket: String,
    pub table: String,
    pub fast_queue_url: String,
    pub slow_queue_url: String,
    /// The name of this test's own caller (its JWT `sub`; see [`identity`]).
    pub owner: String,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Stack {
    /// Connects to the stack named by the environment (see the module docs).
    pub async fn from_env() -> Stack {
        let api = std::env::var("LONGRUN_API_URL")
            .expect("LONGRUN_API_URL is not set: run the end-to-end tests through `make test`, or point it at a stack");
        Self::connect(&api).await
    }

    /// Connects to a local runtime this test started (its resource names
    /// come from its own `/_local/resources`, never from the environment).
    pub async fn local(runtime: &LocalRuntime) -> Stack {
        Self::build(&runtime.api, false).await
    }

    /// Connects to the API at `api`, resources from the environment or the local runtime.
    pub async fn connect(api: &str) -> Stack {
        Self::build(api, true).await
    }

    async fn build(api: &str, names_from_env: bool) -> Stack {
        let api = api.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let shared = longrun_aws::http::load_sdk_config().await;
        let s3_config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(shared.endpoint_url().is_some())
            .build();
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty() && names_from_env);
        let names = [
            "LONGRUN_JOBS_BUCKET",
            "LONGRUN_JOBS_TABLE",
            "LONGRUN_FAST_QUEUE_URL",
            "LONGRUN_SLOW_QUEUE_URL",
        ];
        let local: Option<Value> = match names.iter().all(|n| from_env(n).is_some()) {
            true => None,
            false => Some(
                http.get(format!("{api}/_local/resources"))
                    .send()
                    .await
                    .expect("the local runtime answers /_local/resources")
                    .json()
                    .await
                    .expect("resources are JSON"),
            ),
        };
        let resource = |env: &str, logical: &str| -> String {
            from_env(env).unwrap_or_else(|| {
                local.as_ref().expect("local resources")["refs"][logical]
                    .as_str()
                    .unwrap_or_else(|| panic!("no {logical} in /_local/resources"))
                    .to_owned()
            })
        };
        Stack {
            bucket: resource("LONGRUN_JOBS_BUCKET", "JobsBucket"),
            table: resource("LONGRUN_JOBS_TABLE", "JobsTable"),
            fast_queue_url: resource("LONGRUN_FAST_QUEUE_URL", "FastQueue"),
            slow_queue_url: resource("LONGRUN_SLOW_QUEUE_URL", "SlowQueue"),
            api,
            http,
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            sqs: aws_sdk_sqs::Client::new(&shared),
            dynamodb: aws_sdk_dynamodb::Client::new(&shared),
            owner: format!("e2e-{}", uuid::Uuid::new_v4()),
        }
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, headers, body }
    }

    /// The bearer token this test's caller sends.
    pub fn token(&self) -> String {
        token_for(&self.owner)
    }

    /// The owner the stack makes of this test's caller.
    pub fn owner_key(&self) -> String {
        owner_of(&self.owner)
    }

    /// `POST /jobs` with a JSON body, as this test's caller.
    pub async fn submit(&self, body: &Value, idempotency_key: Option<&str>) -> Answer {
        self.submit_raw(body.to_string().into_bytes(), "application/json", idempotency_key)
            .await
    }

    /// `POST /jobs` with any bytes and content type.
    pub async fn submit_raw(&self, body: Vec<u8>, content_type: &str, idempotency_key: Option<&str>) -> Answer {
        let mut request = self
            .http
            .post(format!("{}/jobs", self.api))
            .bearer_auth(self.token())
            .body(body);
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        Self::answer(request.send().await.expect("POST /jobs")).await
    }

    /// `GET /jobs/{id}` as `owner`.
    pub async fn job_as(&self, id: &str, owner: &str, wait_seconds: u64) -> Answer {
        let request = self
            .http
            .get(format!("{}/jobs/{id}?wait={wait_seconds}", self.api))
            .bearer_auth(token_for(owner));
        Self::answer(request.send().await.expect("GET /jobs/{id}")).await
    }

    /// `GET /jobs/{id}` as this test's caller.
    pub async fn job(&self, id: &str) -> Value {
        let answer = self.job_as(id, &self.owner, 0).await;
        assert_eq!(answer.status, 200, "GET /jobs/{id}: {:?}", answer.body);
        answer.body
    }

    /// Long-polls until the job is terminal; panics after `limit`.
    pub async fn wait_terminal(&self, id: &str, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            let answer = self.job_as(id, &self.owner, 5).await;
            assert_eq!(answer.status, 200, "GET /jobs/{id}: {:?}", answer.body);
            let status = answer.body["status"].as_str().unwrap_or_default().to_owned();
            if !["QUEUED", "RUNNING"].contains(&status.as_str()) {
                return answer.body;
            }
            assert!(
                started.elapsed() < limit,
                "job {id} still {status} after {limit:?}: {}",
                answer.body
            );
        }
    }

    /// Polls until `check` holds for the job view; panics after `limit`.
    pub async fn wait_until(&self, id: &str, limit: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let view = self.job(id).await;
            if check(&view) {
                return view;
            }
            assert!(started.elapsed() < limit, "job {id} never got there: {view}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `POST /jobs/{id}/cancel` as this test's caller.
    pub async fn cancel(&self, id: &str) -> Answer {
        let request = self
            .http
            .post(format!("{}/jobs/{id}/cancel", self.api))
            .bearer_auth(self.token());
        Self::answer(request.send().await.expect("POST /jobs/{id}/cancel")).await
    }

    /// Any API call as this test's caller (`owner` to call as another), with
    /// an optional JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>, owner: Option<&str>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token_for(owner.unwrap_or(&self.owner)));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        Self::answer(request.send().await.expect("an API call")).await
    }

    /// `POST /webhook-secret` as this test's caller: the new `whsec_…` secret.
    pub async fn webhook_secret(&self) -> String {
        let request = self
            .http
            .post(format!("{}/webhook-secret", self.api))
            .bearer_auth(self.token());
        let answer = Self::answer(request.send().await.expect("POST /webhook-secret")).await;
        assert_eq!(answer.status, 201, "{:?}", answer.body);
        answer.body["secret"].as_str().expect("secret").to_owned()
    }

    /// A physical name or URL from the local runtime's `/_local/resources`.
    pub async fn local_ref(&self, logical_id: &str) -> String {
        let resources: Value = self
            .http
            .get(format!("{}/_local/resources", self.api))
            .send()
            .await
            .expect("GET /_local/resources")
            .json()
            .await
            .expect("resources are JSON");
        resources["refs"][logical_id]
            .as_str()
            .unwrap_or_else(|| panic!("no {logical_id} in /_local/resources"))
            .to_owned()
    }

    /// Submits a job that must be accepted; its id.
    pub async fn submit_ok(&self, body: &Value) -> String {
        let answer = self.submit(body, None).await;
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        answer.body["id"].as_str().expect("job id").to_owned()
    }

    /// Every result object stored for a job, key to ETag: what a later
    /// listing is compared with to prove nothing changed.
    pub async fn result_etags(&self, id: &str) -> std::collections::BTreeMap<String, String> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("results/{id}/"))
            .send()
            .await
            .expect("list results");
        listed
            .contents()
            .iter()
            .filter_map(|o| Some((o.key()?.to_owned(), o.e_tag().unwrap_or_default().to_owned())))
            .collect()
    }

    /// The keys of the result objects stored for a job.
    pub async fn result_keys(&self, id: &str) -> Vec<String> {
        self.result_etags(id).await.into_keys().collect()
    }

    /// `POST /uploads` as `owner`.
    pub async fn request_upload(&self, owner: &str, body: &Value) -> Answer {
        let request = self
            .http
            .post(format!("{}/uploads", self.api))
            .bearer_auth(token_for(owner))
            .json(body);
        Self::answer(request.send().await.expect("POST /uploads")).await
    }

    /// Uploads an input the way a caller does: `POST /uploads` for a
    /// presigned URL, then a plain HTTP PUT of the bytes with the headers
    /// it names. The key a job names the input by.
    pub async fn upload(&self, filename: &str, bytes: Vec<u8>) -> String {
        let ticket = self
            .request_upload(
                &self.owner,
                &serde_json::json!({"bytes": bytes.len(), "filename": filename}),
            )
            .await;
        assert_eq!(ticket.status, 201, "{:?}", ticket.body);
        let url = ticket.body["upload_url"].as_str().expect("upload_url");
        let mut put = self.http.put(url).body(bytes);
        for (name, value) in ticket.body["headers"].as_object().expect("headers") {
            put = put.header(name.as_str(), value.as_str().expect("header value"));
        }
        let response = put.send().await.expect("PUT the upload");
        assert!(response.status().is_success(), "PUT {url}: {}", response.status());
        ticket.body["key"].as_str().expect("key").to_owned()
    }

    /// Downloads a (presigned) URL.
    pub async fn download(&self, url: &str) -> Vec<u8> {
        let response = self.http.get(url).send().await.expect("download");
        assert!(response.status().is_success(), "GET {url}: {}", response.status());
        response.bytes().await.expect("download body").to_vec()
    }

    /// Sends a raw message body to a queue, as a duplicate delivery would.
    pub async fn send_message(&self, queue_url: &str, body: &str) {
        self.sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .expect("send message");
    }

    /// Waits until a queue has no visible and no in-flight messages (seen twice in a row).
    pub async fn wait_queue_drained(&self, queue_url: &str, limit: Duration) {
        use aws_sdk_sqs::types::QueueAttributeName::{
            ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible,
        };
        let started = Instant::now();
        let mut empty_in_a_row = 0;
        while empty_in_a_row < 2 {
            let attributes = self
                .sqs
                .get_queue_attributes()
                .queue_url(queue_url)
                .attribute_names(ApproximateNumberOfMessages)
                .attribute_names(ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .expect("queue attributes")
                .attributes
                .unwrap_or_default();
            let count = |name| attributes.get(&name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let total = count(ApproximateNumberOfMessages) + count(ApproximateNumberOfMessagesNotVisible);
            empty_in_a_row = if total == 0 { empty_in_a_row + 1 } else { 0 };
            assert!(
                started.elapsed() < limit,
                "queue {queue_url} still holds {total} messages after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The raw job item, straight from the table.
    /// The job ids in the caller `name`'s quota item (its active set),
    /// sorted, read through the job store's own adapter.
    pub async fn active_slots(&self, name: &str) -> Vec<String> {
        let store = longrun_aws::DynamoJobStore::new(self.dynamodb.clone(), &self.table, 0);
        let mut ids: Vec<String> = store
            .active_slots(&owner_of(name))
            .await
            .expect("read the quota item")
            .iter()
            .map(ToString::to_string)
            .collect();
        ids.sort();
        ids
    }

    pub async fn item(&self, id: &str) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
        self.dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item
            .expect("job item exists")
    }
}
