//! Harness for the end-to-end tests: talks to a running longrun stack over
//! HTTP, and to its bucket, queues and table through the AWS SDK.
//!
//! Endpoint-agnostic: `LONGRUN_API_URL` is the API's base URL (the local
//! runtime, a LocalStack deployment or a real one); the SDK finds the
//! resources' endpoint the standard way (`AWS_ENDPOINT_URL` for an emulator).
//! Resource names come from `LONGRUN_JOBS_BUCKET`, `LONGRUN_JOBS_TABLE`,
//! `LONGRUN_FAST_QUEUE_URL` and `LONGRUN_SLOW_QUEUE_URL` when set (a
//! deployed stack's outputs), otherwise from the local runtime's
//! `/_local/resources`.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
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
    /// A caller identity of this test's own (bearer token → JWT `sub`).
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
            .expect("LONGRUN_API_URL is not set: run the end-to-end tests through `make test`, or point it at a stack")
            .trim_end_matches('/')
            .to_owned();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let shared = aws_config::load_from_env().await;
        let s3_config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(shared.endpoint_url().is_some())
            .build();
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
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
            .bearer_auth(&self.owner)
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
            .bearer_auth(owner);
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

    /// Uploads an input object.
    pub async fn upload(&self, key: &str, bytes: Vec<u8>, content_type: &str) {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .expect("upload input");
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
