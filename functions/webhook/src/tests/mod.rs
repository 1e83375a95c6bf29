//! The webhook function's unit tests, over the in-memory adapters and a
//! small HTTP receiver on the loopback interface.

mod guards;

use longrun_core::ports::{JobLifecycle, OwnerData};
use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use longrun_core::memory::{MemoryJobQueue, MemoryJobStore, MemoryObjectStore, QueuedMessage};
use longrun_core::record::{Callback, Lease};
use longrun_core::webhook::signature::{verify, VerifyError};
use longrun_core::webhook::WebhookSecrets;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Fixture {
    deps: WebhookDeps,
    store: Arc<MemoryJobStore>,
    queue: Arc<MemoryJobQueue>,
}

/// Tries after 1 s and 1 s more (3 in all), to any target (http, loopback).
fn fixture() -> Fixture {
    fixture_with(&[("WEBHOOK_ALLOW_INSECURE_TARGETS", "true")])
}

fn fixture_with(overrides: &[(&str, &str)]) -> Fixture {
    let mut settings = vec![("WEBHOOK_RETRY_SCHEDULE_SECONDS", "1,1")];
    settings.extend_from_slice(overrides);
    let config = Arc::new(longrun_core::fixtures::config(&settings));
    let store = Arc::new(MemoryJobStore::new());
    let queue = Arc::new(MemoryJobQueue::new(&["fast", WEBHOOK_QUEUE, WEBHOOK_DEAD_LETTER_QUEUE]));
    let deps = WebhookDeps {
        store: store.clone(),
        queue: queue.clone(),
        objects: Arc::new(MemoryObjectStore::new()),
        limits: DeliveryLimits::default(),
        guards: Arc::new(DeliveryGuards::new(config.webhook_owner_in_flight)),
        config,
    };
    Fixture { deps, store, queue }
}

/// Gives `owner` a webhook secret, as `POST /webhook-secret` does.
async fn give_secret(f: &Fixture, owner: &str) -> WebhookSecret {
    let secret = WebhookSecret::generate();
    let secrets = WebhookSecrets::rotated(None, secret.to_whsec_string(), now_ms(), 60_000);
    assert!(f.store.replace_webhook_secrets(owner, None, &secrets).await.unwrap());
    secret
}

/// A job of alice's in `status` whose end is announced to `url`.
fn job_with_callback(f: &Fixture, status: JobStatus, url: &str) -> JobRecord {
    let mut job = longrun_core::fixtures::queued_job("alice", "sleep", json!({"seconds": 1}));
    job.callback = Some(Callback::new(url));
    job.status = status;
    if status.is_terminal() {
        job.finished_at = Some(now_ms());
        job.due_at = None;
    }
    f.store.insert(job.clone());
    job
}

fn webhook_message(job: &JobRecord, message_id: &str) -> SqsMessage {
    let body = serde_json::to_string(&JobMessage::for_job(job, now_ms())).unwrap();
    serde_json::from_value(json!({
        "messageId": message_id,
        "receiptHandle": format!("receipt-{message_id}"),
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:longrun-webhooks",
        "awsRegion": "us-east-1"
    }))
    .unwrap()
}

/// Handles one batch holding one message for `job`; the message is settled.
async fn deliver(f: &Fixture, job: &JobRecord, message_id: &str) {
    let mut event = SqsEvent::default();
    event.records = vec![webhook_message(job, message_id)];
    let response = handle(&f.deps, event).await;
    assert!(response.batch_item_failures.is_empty(), "{message_id} was not settled");
}

async fn callback(f: &Fixture, job: &JobRecord) -> Callback {
    f.store.get(&job.id).await.unwrap().unwrap().callback.unwrap()
}

fn sent_to(f: &Fixture, queue: &str) -> Vec<QueuedMessage> {
    f.queue.sent().into_iter().filter(|m| m.queue == queue).collect()
}

/// As if the backoff before the next try were over.
async fn backoff_over(f: &Fixture, job: &JobRecord) {
    let mut record = f.store.get(&job.id).await.unwrap().unwrap();
    let state = record.callback.as_mut().unwrap();
    state.next_attempt_at = state.next_attempt_at.map(|_| now_ms() - 1);
    f.store.insert(record);
}

/// One request as the receiver read it.
struct Received {
    request_line: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// An HTTP receiver on 127.0.0.1 answering its n-th request with the n-th
/// status (the last one over and over). It records each request before it
/// answers, so a delivery that got its answer has been recorded.
struct Receiver {
    url: String,
    requests: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(statuses: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/longrun?team=a", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (recorded, statuses) = (requests.clone(), statuses.to_vec());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Some(request) = read_request(stream).await else {
                    continue;
                };
                let (received, mut stream) = request;
                let status = {
                    let mut all = recorded.lock().unwrap();
                    all.push(received);
                    statuses[(all.len() - 1).min(statuses.len() - 1)]
                };
                let answer = format!("HTTP/1.1 {status} Test\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        Receiver { url, requests }
    }

    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// Reads one HTTP/1.1 request with a `content-length` body.
async fn read_request(mut stream: TcpStream) -> Option<(Received, TcpStream)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers.get("content-length")?.parse().ok()?;
    while buf.len() < head_len + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_len..head_len + length].to_vec();
    Some((
        Received {
            request_line,
            headers,
            body,
        },
        stream,
    ))
}

#[tokio::test]
async fn an_ended_job_is_delivered_once_signed_with_its_owners_secret() {
    let f = fixture();
    let receiver = Receiver::start(&[200]).await;
    let secret = give_secret(&f, "alice").await;
    let job = job_with_callback(&f, JobStatus::Succeeded, &receiver.url);
    deliver(&f, &job, "m1").await;

    assert_eq!(receiver.count(), 1, "delivered once");
    let request = receiver.requests.lock().unwrap().remove(0);
    assert_eq!(request.request_line, "POST /hooks/longrun?team=a HTTP/1.1");
    assert_eq!(request.headers["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["type"], "job.succeeded");
    assert_eq!(body["data"]["id"], job.id.as_str());
    assert_eq!(body["data"]["status"], "SUCCEEDED");
    let id = request.headers[HEADER_ID].as_str();
    assert_eq!(id, message_id(&job));
    let signed = (
        id,
        request.headers[HEADER_TIMESTAMP].as_str(),
        request.headers[HEADER_SIGNATURE].as_str(),
    );
    let now_s = now_ms() / 1000;
    assert_eq!(verify(&secret, signed, &request.body, now_s, 300), Ok(()));
    assert_eq!(
        verify(&WebhookSecret::generate(), signed, &request.body, now_s, 300),
        Err(VerifyError::Mismatch),
        "signed with the owner's secret, not just any"
    );
    let mut tampered = request.body.clone();
    tampered.push(b' ');
    assert_eq!(
        verify(&secret, signed, &tampered, now_s, 300),
        Err(VerifyError::Mismatch)
    );

    let state = callback(&f, &job).await;
    assert!(state.delivered_at.is_some(), "{state:?}");
    assert_eq!((state.attempts, state.last_status), (1, Some(200)));
    assert_eq!((state.next_attempt_at, state.failed_at), (None, None));
    assert!(f.queue.sent().is_empty(), "nothing left to send");
}

#[tokio::test]
async fn a_duplicate_message_after_the_delivery_sends_nothing_more() {
    let f = fixture();
    let receiver = Receiver::start(&[204]).await;
    give_secret(&f, "alice").await;
    let job = job_with_callback(&f, JobStatus::Failed, &receiver.url);
    deliver(&f, &job, "m1").await;
    assert_eq!(receiver.count(), 1);
    let delivered = callback(&f, &job).await;
    assert!(delivered.delivered_at.is_some(), "{delivered:?}");

    deliver(&f, &job, "m1-duplicate").await;
    deliver(&f, &job, "m1-another").await;
    assert_eq!(receiver.count(), 1, "no second POST");
    assert_eq!(callback(&f, &job).await, delivered, "the state is untouched");
    assert!(f.queue.sent().is_empty(), "no retry, no dead letter");
}

#[tokio::test]
async fn copies_of_one_announcement_in_one_batch_make_one_post() {
    let f = fixture();
    let receiver = Receiver::start(&[204]).await;
    give_secret(&f, "alice").await;
    let job = job_with_callback(&f, JobStatus::Cancelled, &receiver.url);
    // Three cancels of one job announce its end three times.
    let mut event = SqsEvent::default();
    event.records = ["c1", "c2", "c3"].map(|id| webhook_message(&job, id)).to_vec();
    let response = handle(&f.deps, event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(receiver.count(), 1, "one copy took the try; the others made no POST");
    let state = callback(&f, &job).await;
    assert!(
        state.delivered_at.is_some() && state.in_flight_until.is_none(),
        "{state:?}"
    );
    assert_eq!(state.attempts, 1);
}

#[tokio::test]
async fn a_failed_try_is_recorded_and_tried_again_after_the_first_wait() {
    let f = fixture();
    let receiver = Receiver::start(&[500]).await;
    give_secret(&f, "alice").await;
    let job = job_with_callback(&f, JobStatus::Succeeded, &receiver.url);
    deliver(&f, &job, "m1").await;
    assert_eq!(receiver.count(), 1);
    let state = callback(&f, &job).await;
    assert_eq!((state.attempts, state.last_status), (1, Some(500)));
    assert!(state.last_error.as_deref().unwrap().contains("500"), "{state:?}");
    let tried_at = state.last_attempt_at.expect("the try's time");
    assert_eq!(
        state.next_attempt_at,
        Some(tried_at + 1_000),
        "the schedule's first wait"
    );
    assert_eq!((state.delivered_at, state.failed_at), (None, None));
    let retries = sent_to(&f, WEBHOOK_QUEUE);
    assert_eq!(retries.len(), 1, "a fresh, delayed message: {:?}", f.queue.sent());
    assert_eq!((&retries[0].message.job_id, retries[0].delay_seconds), (&job.id, 1));
    assert!(sent_to(&f, WEBHOOK_DEAD_LETTER_QUEUE).is_empty());

    // A copy that comes before the wait is over tries nothing; it waits on.
    deliver(&f, &job, "m1-early").await;
    assert_eq!(receiver.count(), 1, "no try before the wait is over");
    assert_eq!(callback(&f, &job).await, state);
    let retries = sent_to(&f, WEBHOOK_QUEUE);
    assert_eq!(retries.len(), 2);
    assert!((1..=2).contains(&retries[1].delay_seconds), "{:?}", retries[1]);
}

#[tokio::test]
async fn after_the_last_try_the_delivery_goes_to_the_dead_letter_queue() {
    let f = fixture();
    let receiver = Receiver::start(&[500, 503, 500]).await;
    give_secret(&f, "alice").await;
    let job = job_with_callback(&f, JobStatus::Succeeded, &receiver.url);
    for round in 1..=3 {
        deliver(&f, &job, &format!("m{round}")).await;
        assert_eq!(receiver.count(), round, "try {round}");
        backoff_over(&f, &job).await;
    }
    let state = callback(&f, &job).await;
    assert_eq!(f.deps.config.webhook_max_attempts(), 3);
    assert_eq!((state.attempts, state.last_status), (3, Some(500)));
    assert!(state.failed_at.is_some(), "{state:?}");
    assert_eq!((state.delivered_at, state.next_attempt_at), (None, None));
    let dead = sent_to(&f, WEBHOOK_DEAD_LETTER_QUEUE);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message.job_id, job.id);
    assert_eq!(
        sent_to(&f, WEBHOOK_QUEUE).len(),
        2,
        "a retry after each of the first two tries, none after the last"
    );

    deliver(&f, &job, "m-late").await;
    assert_eq!(receiver.count(), 3, "settled: nothing more is tried");
    assert_eq!(f.queue.sent().len(), 3);
    let ended = f.store.get(&job.id).await.unwrap().unwrap();
    assert_eq!(ended.status, JobStatus::Succeeded, "the job itself is untouched");
}

#[tokio::test]
async fn a_job_still_held_by_a_live_run_is_looked_at_again_after_its_lease() {
    let f = fixture();
    let receiver = Receiver::start(&[200]).await;
    give_secret(&f, "alice").await;
    let mut job = job_with_callback(&f, JobStatus::Running, &receiver.url);
    let lease = Lease::new(now_ms() + 30_000);
    job.lease_token = Some(lease.token.clone());
    job.lease_expires_at = Some(lease.expires_at);
    f.store.insert(job.clone());
    deliver(&f, &job, "announced").await;
    assert_eq!(receiver.count(), 0, "its end is not written yet: nothing delivered");
    assert_eq!(callback(&f, &job).await, Callback::new(&receiver.url), "no try counted");
    let again = sent_to(&f, WEBHOOK_QUEUE);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message.job_id, job.id);
    assert!(
        (30..=32).contains(&again[0].delay_seconds),
        "once the 30 s lease is due: {:?}",
        again[0]
    );
}

#[tokio::test]
async fn a_job_neither_ended_nor_held_is_looked_at_again_for_a_minute_then_left_to_whoever_ends_it() {
    let f = fixture();
    let receiver = Receiver::start(&[200]).await;
    give_secret(&f, "alice").await;
    let queued = job_with_callback(&f, JobStatus::Queued, &receiver.url);
    let mut crashed = job_with_callback(&f, JobStatus::Running, &receiver.url);
    crashed.lease_token = Some("dead".into());
    crashed.lease_expires_at = Some(now_ms() - 5_000);
    f.store.insert(crashed.clone());

    // Just announced: its writer may be slow, so it is looked at again soon,
    // still counted from the announcement.
    let announced_at = now_ms() - 10_000;
    handle_one(&f, &queued, "young", announced_at).await;
    let again = sent_to(&f, WEBHOOK_QUEUE);
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(
        (again[0].message.enqueued_at, again[0].delay_seconds),
        (announced_at, 5)
    );

    // Announced over a minute ago: dropped (whoever ends it announces again).
    let long_ago = now_ms() - 61_000;
    handle_one(&f, &queued, "queued", long_ago).await;
    handle_one(&f, &crashed, "crashed", long_ago).await;
    assert_eq!(receiver.count(), 0);
    assert_eq!(sent_to(&f, WEBHOOK_QUEUE).len(), 1, "dropped, not sent on");
    assert_eq!(callback(&f, &queued).await, Callback::new(&receiver.url));
    assert_eq!(callback(&f, &crashed).await, Callback::new(&receiver.url));
}

/// Handles a message for `job` announced at `announced_at`; it is settled.
async fn handle_one(f: &Fixture, job: &JobRecord, message_id: &str, announced_at: i64) {
    let mut message = webhook_message(job, message_id);
    message.body = Some(serde_json::to_string(&JobMessage::for_job(job, announced_at)).unwrap());
    let mut event = SqsEvent::default();
    event.records = vec![message];
    let response = handle(&f.deps, event).await;
    assert!(response.batch_item_failures.is_empty(), "{message_id} was not settled");
}

#[tokio::test]
async fn an_owner_without_a_secret_gets_a_failed_try_that_says_so() {
    let f = fixture();
    let receiver = Receiver::start(&[200]).await;
    let job = job_with_callback(&f, JobStatus::Succeeded, &receiver.url);
    deliver(&f, &job, "m1").await;
    assert_eq!(receiver.count(), 0, "nothing unsigned is sent");
    let state = callback(&f, &job).await;
    assert_eq!((state.attempts, state.last_status), (1, None));
    let error = state.last_error.as_deref().unwrap();
    assert!(
        error.contains("no webhook secret") && error.contains("POST /webhook-secret"),
        "{error}"
    );
    assert!(state.next_attempt_at.is_some() && state.delivered_at.is_none());
    assert_eq!(sent_to(&f, WEBHOOK_QUEUE).len(), 1, "tried again later");
}

#[tokio::test]
async fn with_insecure_targets_off_a_loopback_callback_is_refused_without_connecting() {
    let f = fixture_with(&[]);
    assert!(!f.deps.config.webhook_allow_insecure_targets);
    give_secret(&f, "alice").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let plain = job_with_callback(&f, JobStatus::Succeeded, &format!("http://{addr}/hook"));
    let loopback = job_with_callback(&f, JobStatus::Succeeded, &format!("https://{addr}/hook"));
    deliver(&f, &plain, "plain").await;
    deliver(&f, &loopback, "loopback").await;

    for (job, reason) in [(&plain, "https"), (&loopback, "loopback")] {
        let state = callback(&f, job).await;
        assert_eq!((state.attempts, state.last_status), (1, None), "{reason}");
        let error = state.last_error.as_deref().unwrap();
        assert!(error.starts_with("refused") && error.contains(reason), "{error}");
        assert!(state.delivered_at.is_none());
    }
    // Connections are accepted in the order they were made: if either
    // refused try had connected, its connection would come before this one.
    let probe = TcpStream::connect(addr).await.unwrap();
    let (_, first_peer) = listener.accept().await.unwrap();
    assert_eq!(
        first_peer,
        probe.local_addr().unwrap(),
        "the receiver got nothing before"
    );
}
