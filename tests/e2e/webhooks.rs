//! Webhooks end to end: a loopback receiver (the test runtime allows http
//! and loopback targets; a deployed stack does not) gets the job's end,
//! signed per Standard Webhooks, once per end; a failing receiver is
//! retried and the view shows it; a receiver that is down ends in the
//! webhook dead-letter queue and the job is unaffected; with the switch off
//! every private address class is refused at submit.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use longrun_core::webhook::signature::{verify, WebhookSecret};
use longrun_e2e::{LocalRuntime, Stack};
use serde_json::{json, Value};

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Delivery {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

/// A webhook receiver on 127.0.0.1 that answers the statuses of `script`
/// in turn (then 200) and keeps what it got.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
    script: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    async fn start(script: &[u16]) -> (Receiver, SocketAddr) {
        let receiver = Receiver {
            script: Arc::new(Mutex::new(script.iter().rev().copied().collect())),
            ..Receiver::default()
        };
        let app = Router::new().route("/hook", post(receive)).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, addr)
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Delivery> {
        let started = Instant::now();
        loop {
            let got = self.deliveries();
            if got.len() >= count {
                return got;
            }
            assert!(
                started.elapsed() < limit,
                "{} of {count} deliveries after {limit:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    receiver.got.lock().unwrap().push(Delivery {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: body.to_vec(),
    });
    let status = receiver.script.lock().unwrap().pop().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

fn sleep_job(seconds: u32, callback: &str) -> Value {
    json!({"type": "sleep", "input": {"seconds": seconds}, "callback_url": callback})
}

fn verifies(secret: &str, delivery: &Delivery) -> bool {
    let secret = WebhookSecret::parse(secret).expect("a whsec_ secret");
    let now = chrono::Utc::now().timestamp();
    verify(
        &secret,
        (&delivery.id, &delivery.timestamp, &delivery.signature),
        &delivery.body,
        now,
        300,
    )
    .is_ok()
}

#[tokio::test]
#[ignore = "end-to-end: needs a running stack (make test)"]
async fn the_end_of_a_job_arrives_once_signed_and_the_view_shows_it_delivered() {
    let stack = Stack::from_env().await;
    let secret = stack.webhook_secret().await;
    let (receiver, addr) = Receiver::start(&[]).await;
    let id = stack.submit_ok(&sleep_job(1, &format!("http://{addr}/hook"))).await;
    let view = stack.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(view["status"], "SUCCEEDED");

    let got = receiver.wait_for(1, Duration::from_secs(30)).await;
    let delivered = stack
        .wait_until(&id, Duration::from_secs(10), |v| v["callback"]["state"] == "delivered")
        .await;
    assert_eq!(delivered["callback"]["attempts"], 1, "{delivered}");
    assert_eq!(delivered["callback"]["last_status"], 200);
    // Nothing more comes: one end, one delivery (give a duplicate the time
    // a resend or a second announcement would take).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(receiver.deliveries().len(), 1, "{:?}", receiver.deliveries());

    let delivery = &got[0];
    assert!(
        verifies(&secret, delivery),
        "the signature does not verify: {delivery:?}"
    );
    let mut tampered = delivery.clone();
    tampered.body.push(b' ');
    assert!(!verifies(&secret, &tampered), "a changed body must not verify");
    let other = stack_with_other_owner(&stack).webhook_secret().await;
    assert!(!verifies(&other, delivery), "another owner's secret must not verify");
    let payload: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(payload["type"], "job.succeeded");
    assert_eq!(payload["data"]["id"], id.as_str());
    assert_eq!(payload["data"]["status"], "SUCCEEDED");
    assert!(delivery.id.contains(&id.replace('-', "")), "{}", delivery.id);
}

fn stack_with_other_owner(stack: &Stack) -> Stack {
    Stack {
        owner: format!("e2e-other-{}", uuid::Uuid::new_v4()),
        api: stack.api.clone(),
        http: stack.http.clone(),
        s3: stack.s3.clone(),
        sqs: stack.sqs.clone(),
        dynamodb: stack.dynamodb.clone(),
        bucket: stack.bucket.clone(),
        table: stack.table.clone(),
        fast_queue_url: stack.fast_queue_url.clone(),
        slow_queue_url: stack.slow_queue_url.clone(),
    }
}

#[tokio::test]
#[ignore = "end-to-end: needs a running stack (make test)"]
async fn a_receiver_failing_twice_gets_three_tries_with_one_webhook_id_and_is_delivered() {
    let stack = Stack::from_env().await;
    let secret = stack.webhook_secret().await;
    let (receiver, addr) = Receiver::start(&[500, 500]).await;
    let id = stack.submit_ok(&sleep_job(0, &format!("http://{addr}/hook"))).await;
    let got = receiver.wait_for(3, Duration::from_secs(60)).await;
    let view = stack
        .wait_until(&id, Duration::from_secs(20), |v| v["callback"]["state"] == "delivered")
        .await;
    assert_eq!(view["status"], "SUCCEEDED");
    assert_eq!(view["callback"]["attempts"], 3, "{view}");
    assert_eq!(view["callback"]["last_status"], 200);
    assert!(view["callback"]["delivered_at"].is_string());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got_now = receiver.deliveries();
    assert_eq!(got_now.len(), 3, "no more after the 200: {got_now:?}");
    assert!(got.iter().all(|d| d.id == got[0].id), "one webhook-id for every try");
    assert!(got.iter().all(|d| verifies(&secret, d)));
}

#[tokio::test]
#[ignore = "end-to-end: needs a running stack (make test)"]
async fn a_receiver_that_is_down_ends_in_the_webhook_dead_letter_queue_and_the_job_is_unaffected() {
    let stack = Stack::from_env().await;
    stack.webhook_secret().await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let id = stack.submit_ok(&sleep_job(0, &format!("http://{closed}/hook"))).await;
    // WebhookRetrySchedule=1,1 in the test runtime: three tries.
    let view = stack
        .wait_until(&id, Duration::from_secs(60), |v| v["callback"]["state"] == "failed")
        .await;
    assert_eq!(view["status"], "SUCCEEDED", "the job itself is unaffected: {view}");
    assert_eq!(view["progress"], 100);
    assert_eq!(view["callback"]["attempts"], 3, "{view}");
    assert!(
        view["callback"]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("connect"),
        "{view}"
    );

    let dlq = stack.local_ref("WebhookDeadLetterQueue").await;
    let started = Instant::now();
    loop {
        let received = stack
            .sqs
            .receive_message()
            .queue_url(&dlq)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from the webhook DLQ");
        let bodies: Vec<Value> = received
            .messages()
            .iter()
            .filter_map(|m| serde_json::from_str(m.body()?).ok())
            .collect();
        if bodies.iter().any(|b| b["job_id"] == id.as_str()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "job {id} never reached the webhook DLQ"
        );
    }
}

#[tokio::test]
#[ignore = "end-to-end: needs a running stack (make test)"]
async fn with_the_switch_off_every_private_address_class_is_refused_at_submit() {
    let runtime = LocalRuntime::start(
        "longrun-ssrf",
        &[
            "--no-workers",
            "--parameter-overrides",
            "WebhookAllowInsecureTargets=false",
        ],
    )
    .await;
    let stack = Stack::local(&runtime).await;
    stack.webhook_secret().await;
    let refused = [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://127.1/hook",
        "https://2130706433/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://172.16.0.1/hook",
        "https://192.168.1.1/hook",
        "https://100.64.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://169.254.1.1/hook",
        "https://224.0.0.1/hook",
        "https://0.0.0.0/hook",
        "https://[::1]/hook",
        "https://[fe80::1]/hook",
        "https://[fc00::1]/hook",
        "https://[fd00:ec2::254]/hook",
        "https://[ff02::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "https://[64:ff9b::a00:1]/hook",
        "https://[2002:a00:1::]/hook",
        "https://user:pass@example.com/hook",
    ];
    for url in refused {
        let answer = stack.submit(&sleep_job(0, url), None).await;
        assert_eq!(answer.status, 422, "{url} was not refused: {:?}", answer.body);
        assert_eq!(
            answer.body["errors"][0]["field"], "callback_url",
            "{url}: {:?}",
            answer.body
        );
    }
}
