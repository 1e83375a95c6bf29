//! `BENCH_ONLY=quota` (its own section): submit with the owner quota on
//! against its floor. With a quota, submit makes one conditional UpdateItem
//! of the owner's quota item (reserving a slot), one conditional PutItem
//! and one SendMessage; the floor is those three bare calls, and the floor
//! without the UpdateItem says what the quota itself costs. Three paths,
//! interleaved round by round on a stack of its own (quota 100,000, so no
//! submit is refused and no repair runs), same emulator, same run.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use longrun_aws::AwsClients;
use longrun_core::time::now_ms;
use longrun_core::JobId;

use crate::{ms, percentile, stack_options, Bench, RequestCounter};

/// A quota high enough that no submit of the run is refused.
const QUOTA: &str = "100000";

/// The bare reservation submit makes: the job's id added to the owner's
/// active set under the same condition, on an item of its own owner.
async fn bare_reserve(bench: &Bench, id: &JobId) {
    bench
        .plain
        .dynamodb
        .update_item()
        .table_name(&bench.table)
        .key("pk", AttributeValue::S("owner#bench-bare".into()))
        .update_expression("ADD #active :ids")
        .condition_expression("attribute_not_exists(#active) OR size(#active) < :limit OR contains(#active, :id)")
        .expression_attribute_names("#active", "active")
        .expression_attribute_values(":ids", AttributeValue::Ss(vec![id.to_string()]))
        .expression_attribute_values(":id", AttributeValue::S(id.to_string()))
        .expression_attribute_values(":limit", AttributeValue::N(QUOTA.into()))
        .send()
        .await
        .unwrap();
}

pub(crate) async fn submit_with_quota(shared: &aws_config::SdkConfig, plain: &AwsClients, rounds: usize) {
    let mut options = stack_options(
        format!("longrun-bench-quota-{}", now_ms()),
        &[("EnableSleepJob", "true"), ("MaxActiveJobsPerOwner", QUOTA)],
    );
    options.workers = false;
    let stack = longrun_local::start(&options, shared, plain)
        .await
        .expect("local stack");
    for poller in &stack.pollers {
        poller.abort();
    }
    let bench = Bench::new(stack, RequestCounter::default(), plain.clone());
    let body = r#"{"type":"sleep","input":{"seconds":0}}"#;
    for _ in 0..20 {
        bench.submit(body).await;
        bare_reserve(&bench, &JobId::random()).await;
        bench.bare_put_and_send(body).await;
    }
    let (mut ours, mut floor, mut unquoted) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds {
        if i % 50 == 0 {
            bench.purge().await;
        }
        let t = Instant::now();
        bench.submit(body).await;
        ours.push(t.elapsed());
        let t = Instant::now();
        bare_reserve(&bench, &JobId::random()).await;
        bench.bare_put_and_send(body).await;
        floor.push(t.elapsed());
        let t = Instant::now();
        bench.bare_put_and_send(body).await;
        unquoted.push(t.elapsed());
    }
    bench.purge().await;
    for v in [&mut ours, &mut floor, &mut unquoted] {
        v.sort();
    }
    let mean = |v: &[Duration]| ms(v.iter().sum::<Duration>() / v.len() as u32);
    println!("### Submit with the quota on ({rounds} interleaved rounds, in process, same emulator)\n");
    println!("| path | p50 ms | p99 ms | mean ms |");
    println!("| --- | --- | --- | --- |");
    for (name, v) in [
        ("submit handler, quota on", &ours),
        ("floor: bare UpdateItem (slot) + PutItem + SendMessage", &floor),
        ("bare PutItem + SendMessage (no quota)", &unquoted),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} |",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99)),
            mean(v)
        );
    }
    let ratio = |a: &[Duration], b: &[Duration], p: f64| ms(percentile(a, p)) / ms(percentile(b, p));
    println!(
        "\nOurs / the floor: p50 {:.2}x, p99 {:.2}x, mean {:.2}x. \
         What the quota costs (the floor / the floor without its UpdateItem): p50 {:.2}x, p99 {:.2}x.\n",
        ratio(&ours, &floor, 0.5),
        ratio(&ours, &floor, 0.99),
        mean(&ours) / mean(&floor),
        ratio(&floor, &unquoted, 0.5),
        ratio(&floor, &unquoted, 0.99),
    );
}
