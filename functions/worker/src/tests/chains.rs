//! Chains and webhooks: the next step created and sent with the end, or
//! not at all; ends announced before they are written.

use super::*;

/// The fixture with the webhook queue as well, where ends are announced.
fn webhook_fixture() -> Fixture {
    let mut f = fixture();
    f.queue = Arc::new(MemoryJobQueue::new(&[
        "fast",
        "slow",
        longrun_core::webhook::WEBHOOK_QUEUE,
    ]));
    f.deps.queue = f.queue.clone();
    f
}

const SALES: &str = "region,amount\neu,1\nus,2\neu,3\nasia,7\n";

/// A report of `SALES` whose chain goes on with a report over the
/// `summary.csv` it writes.
fn report_chain(f: &Fixture) -> JobRecord {
    let mut job = add_job(
        f,
        "report",
        json!({"source": {"csv": SALES}, "group_by": ["region"], "values": ["amount"]}),
        3,
    );
    let step = longrun_core::chain::ChainStep {
        job_type: "report".into(),
        input: json!({"source": {"from_previous": "summary.csv"}, "group_by": ["region"], "values": ["amount_sum"]}),
    };
    job.chain = Some(longrun_core::chain::ChainLink::first(&job.id, vec![step]));
    f.store.insert(job.clone());
    job
}

fn result_key(job: &JobRecord, name: &str) -> String {
    job.results
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", job.results))
        .key
        .clone()
}

/// `{region: sum of column}` from a report's summary.json.
fn sums_by_region(f: &Fixture, job: &JobRecord, column: &str) -> std::collections::BTreeMap<String, f64> {
    let (bytes, _) = f.objects.object(&result_key(job, "summary.json")).unwrap();
    let summary: Value = serde_json::from_slice(&bytes).unwrap();
    summary["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let region = g["key"]["region"].as_str().unwrap().to_owned();
            (region, g["stats"][column]["sum"].as_f64().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_chain_step_that_succeeds_creates_its_next_step_and_sends_it() {
    let f = fixture();
    let first = report_chain(&f);
    let response = handle(&f.deps, event(vec![job_message(&first, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let done = reload(&f, &first).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{:?}", done.error);

    let next_id = longrun_core::chain::next_step_id(&first).unwrap();
    assert_eq!(longrun_core::chain::next_job_id(&done), Some(next_id.clone()));
    let next = f.store.get(&next_id).await.unwrap().expect("the next step was created");
    assert_eq!((next.status, next.job_type.as_str()), (JobStatus::Queued, "report"));
    assert_eq!((next.owner.as_str(), next.queue.as_str()), ("alice", "fast"));
    let summary_csv = result_key(&done, "summary.csv");
    assert_eq!(
        next.input["source"],
        json!({"key": summary_csv}),
        "the placeholder resolved"
    );
    assert_eq!(next.input["values"], json!(["amount_sum"]));
    let link = next.chain.as_ref().unwrap();
    assert_eq!((link.step, &link.chain_id), (1, &first.id));
    assert_eq!(link.previous_job_id.as_ref(), Some(&first.id));
    assert_eq!(link.readable_results, [summary_csv]);
    assert!(link.then.is_empty(), "the last step");

    let sent = f.queue.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].queue.as_str(), &sent[0].message.job_id, sent[0].delay_seconds),
        ("fast", &next_id, 0)
    );
}

#[tokio::test]
async fn the_next_step_reads_the_result_its_input_names_and_no_other() {
    let f = fixture();
    let first = report_chain(&f);
    handle(&f.deps, event(vec![job_message(&first, "m1")]), &context(60)).await;
    let first = reload(&f, &first).await;
    let next = f
        .store
        .get(&longrun_core::chain::next_step_id(&first).unwrap())
        .await
        .unwrap()
        .unwrap();
    let response = handle(&f.deps, event(vec![job_message(&next, "m2")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let second = reload(&f, &next).await;
    assert_eq!(second.status, JobStatus::Succeeded, "{:?}", second.error);
    let expected =
        std::collections::BTreeMap::from([("asia".to_owned(), 7.0), ("eu".to_owned(), 4.0), ("us".to_owned(), 2.0)]);
    assert_eq!(sums_by_region(&f, &first, "amount"), expected);
    assert_eq!(
        sums_by_region(&f, &second, "amount_sum"),
        expected,
        "the second report summed the first one's summary.csv"
    );

    // Another result of the same job, and the same result to a job that is
    // no step after it: neither opens.
    let mut other_result = add_job(
        &f,
        "report",
        json!({"source": {"key": result_key(&first, "summary.json")}, "group_by": ["region"], "values": ["amount"]}),
        3,
    );
    other_result.chain = next.chain.clone();
    f.store.insert(other_result.clone());
    let outsider = add_job(
        &f,
        "report",
        json!({"source": {"key": result_key(&first, "summary.csv")}, "group_by": ["region"], "values": ["amount_sum"]}),
        3,
    );
    handle(
        &f.deps,
        event(vec![
            job_message(&other_result, "other"),
            job_message(&outsider, "outsider"),
        ]),
        &context(60),
    )
    .await;
    for job in [&other_result, &outsider] {
        let failed = reload(&f, job).await;
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.error.unwrap().code, codes::INPUT_NOT_FOUND);
        assert!(failed.results.is_empty());
    }
}

#[tokio::test]
async fn a_job_with_a_callback_announces_its_end_to_the_webhook_queue() {
    let f = webhook_fixture();
    let mut job = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    job.callback = Some(longrun_core::record::Callback::new("https://hooks.example.com/x"));
    f.store.insert(job.clone());
    let plain = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    let response = handle(
        &f.deps,
        event(vec![job_message(&job, "m1"), job_message(&plain, "m2")]),
        &context(60),
    )
    .await;
    assert!(failures(&response).is_empty());
    assert_eq!(reload(&f, &job).await.status, JobStatus::Succeeded);
    assert_eq!(reload(&f, &plain).await.status, JobStatus::Succeeded);
    let sent = f.queue.sent();
    assert_eq!(sent.len(), 1, "only the job with a callback is announced: {sent:?}");
    assert_eq!(
        (sent[0].queue.as_str(), &sent[0].message.job_id),
        (longrun_core::webhook::WEBHOOK_QUEUE, &job.id)
    );
    assert_eq!(sent[0].delay_seconds, longrun_core::webhook::ANNOUNCE_DELAY_SECONDS);
}

#[tokio::test]
async fn an_end_that_cannot_be_announced_is_not_written() {
    let f = webhook_fixture();
    let mut job = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    job.callback = Some(longrun_core::record::Callback::new("https://hooks.example.com/x"));
    f.store.insert(job.clone());
    f.queue.fail_next_sends(1);
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty(), "passed on, not redelivered");
    let record = reload(&f, &job).await;
    assert_eq!(record.status, JobStatus::Running, "no end written unannounced");
    assert!(record.lease_token.is_some() && record.finished_at.is_none());
    let sent = f.queue.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].queue.as_str(), &sent[0].message.job_id),
        ("fast", &job.id),
        "the job comes back once its lease expires, to be ended (and announced) then"
    );
}

#[tokio::test]
async fn a_failing_first_step_creates_no_next_step() {
    let f = fixture();
    let mut job = add_job(&f, "sleep", json!({"seconds": 0, "fail": "permanent"}), 3);
    let step = longrun_core::chain::ChainStep {
        job_type: "sleep".into(),
        input: json!({"seconds": 0}),
    };
    job.chain = Some(longrun_core::chain::ChainLink::first(&job.id, vec![step]));
    f.store.insert(job.clone());
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let failed = reload(&f, &job).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(
        f.store
            .get(&longrun_core::chain::next_step_id(&job).unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(f.store.len(), 1, "no step created");
    assert!(f.queue.sent().is_empty(), "nothing sent");
    assert_eq!(longrun_core::chain::next_job_id(&failed), None);
}

/// A job that succeeds although its owner asked to cancel it while it was
/// finishing: the cancel request reaches the store after the run's last
/// look at it.
struct CancelledAsItSucceeds(Arc<MemoryJobStore>);

#[longrun_core::async_trait]
impl longrun_core::job_types::JobHandler for CancelledAsItSucceeds {
    fn job_type(&self) -> &'static str {
        "cancelled_as_it_succeeds"
    }
    fn validate(&self, _: &Value) -> Result<(), Vec<longrun_core::api::FieldError>> {
        Ok(())
    }
    async fn run(&self, ctx: &JobContext, _: &Value) -> Result<Vec<longrun_core::ResultObject>, JobError> {
        let asked = self.0.request_cancel(ctx.job_id(), now_ms()).await.unwrap();
        assert!(
            matches!(asked, longrun_core::ports::CancelOutcome::Requested(_)),
            "{asked:?}"
        );
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_step_asked_to_cancel_as_it_succeeds_neither_creates_nor_sends_a_next_step() {
    let mut f = fixture();
    let mut registry = longrun_jobs::standard(&f.deps.config);
    registry.register(Arc::new(CancelledAsItSucceeds(f.store.clone())));
    f.deps.registry = Arc::new(registry);
    let mut job = add_job(&f, "cancelled_as_it_succeeds", json!({}), 3);
    let step = longrun_core::chain::ChainStep {
        job_type: "sleep".into(),
        input: json!({"seconds": 0}),
    };
    job.chain = Some(longrun_core::chain::ChainLink::first(&job.id, vec![step]));
    f.store.insert(job.clone());
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let ended = reload(&f, &job).await;
    assert_eq!((ended.status, ended.cancel_requested), (JobStatus::Succeeded, true));
    assert_eq!(
        f.store
            .get(&longrun_core::chain::next_step_id(&job).unwrap())
            .await
            .unwrap(),
        None,
        "the cancel stops the chain"
    );
    assert!(
        f.queue.sent().is_empty(),
        "no message for a step that was never created: {:?}",
        f.queue.sent()
    );
}
