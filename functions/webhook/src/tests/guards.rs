//! A hanging receiver of one tenant does not hold up the others: its host's
//! breaker opens, and one owner has only its cap of POSTs in flight.

use super::*;
use crate::guards::{BREAKER_FAILURES, OWNER_BUSY_WAIT_MS};
use std::time::Duration;

/// A receiver that reads requests and never answers; counts connections.
async fn hanging_receiver() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    (url, connections)
}

fn quick(f: &mut Fixture) {
    f.deps.limits.total_timeout = Duration::from_millis(300);
    f.deps.limits.connect_timeout = Duration::from_millis(200);
}

fn owned_job(f: &Fixture, owner: &str, url: &str) -> JobRecord {
    let mut job = job_with_callback(f, JobStatus::Succeeded, url);
    job.owner = owner.into();
    f.store.insert(job.clone());
    job
}

#[tokio::test]
async fn a_host_that_never_answers_is_left_alone_for_a_while_and_others_are_delivered() {
    let mut f = fixture();
    quick(&mut f);
    let (hanging, connections) = hanging_receiver().await;
    give_secret(&f, "alice").await;
    give_secret(&f, "bob").await;
    for n in 0..BREAKER_FAILURES {
        let job = owned_job(&f, "alice", &hanging);
        deliver(&f, &job, &format!("m{n}")).await;
        let state = callback(&f, &job).await;
        assert_eq!(
            (state.attempts, state.last_status),
            (1, None),
            "a try without an answer"
        );
    }
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        BREAKER_FAILURES as usize
    );
    // The breaker is open: bob's delivery to that host waits, no try used.
    let waiting = owned_job(&f, "bob", &hanging);
    let sent_before = sent_to(&f, WEBHOOK_QUEUE).len();
    deliver(&f, &waiting, "m-wait").await;
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        BREAKER_FAILURES as usize,
        "no connection"
    );
    let state = callback(&f, &waiting).await;
    assert_eq!(
        (state.attempts, state.in_flight_until),
        (0, None),
        "no try taken: {state:?}"
    );
    let later = sent_to(&f, WEBHOOK_QUEUE);
    assert_eq!(later.len(), sent_before + 1, "looked at again later");
    assert!(later.last().unwrap().delay_seconds >= 29, "{:?}", later.last());
    // Another host is delivered at once.
    let receiver = Receiver::start(&[200]).await;
    let elsewhere = owned_job(&f, "bob", &receiver.url);
    deliver(&f, &elsewhere, "m-other").await;
    assert!(callback(&f, &elsewhere).await.delivered_at.is_some());
}

#[tokio::test]
async fn one_owner_has_at_most_its_cap_of_posts_in_flight() {
    let mut f = fixture_with(&[
        ("WEBHOOK_ALLOW_INSECURE_TARGETS", "true"),
        ("WEBHOOK_OWNER_IN_FLIGHT", "2"),
    ]);
    quick(&mut f);
    let (hanging, connections) = hanging_receiver().await;
    give_secret(&f, "alice").await;
    give_secret(&f, "bob").await;
    let alices: Vec<JobRecord> = (0..5).map(|_| owned_job(&f, "alice", &hanging)).collect();
    let receiver = Receiver::start(&[200]).await;
    let bobs = owned_job(&f, "bob", &receiver.url);
    let mut event = SqsEvent::default();
    event.records = alices
        .iter()
        .chain(std::iter::once(&bobs))
        .enumerate()
        .map(|(n, job)| webhook_message(job, &format!("m{n}")))
        .collect();
    let response = handle(&f.deps, event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "two of alice's five POSTed"
    );
    let mut tried = 0;
    for job in &alices {
        tried += callback(&f, job).await.attempts;
    }
    assert_eq!(tried, 2, "the other three used no try");
    let waits: Vec<u32> = sent_to(&f, WEBHOOK_QUEUE).iter().map(|m| m.delay_seconds).collect();
    let busy = (OWNER_BUSY_WAIT_MS / 1000) as u32;
    assert_eq!(waits.iter().filter(|&&d| d == busy).count(), 3, "{waits:?}");
    assert!(callback(&f, &bobs).await.delivered_at.is_some(), "bob is not held up");
}
