//! `schedules`, `pause-schedule` and `resume-schedule`: recurring schedules
//! as an operator sees them (every owner's), and pausing or resuming them
//! as their owner's PATCH would.

use std::process::ExitCode;

use aws_sdk_dynamodb::types::AttributeValue;
use longrun_aws::{describe, AwsClients};
use longrun_core::ports::JobStore;
use longrun_core::schedule::{change_schedule, Changed, Schedule};
use longrun_core::time::rfc3339;
use longrun_core::Config;
use serde_json::json;

/// Every schedule (or `owner`'s), at most `limit`, oldest first.
pub(crate) async fn read(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    owner: Option<&str>,
    limit: usize,
) -> Result<Vec<Schedule>, String> {
    let mut found = Vec::new();
    let mut start_key = None;
    loop {
        let (items, next) = match owner {
            Some(owner) => dynamodb
                .query()
                .table_name(table)
                .index_name(longrun_aws::OWNER_INDEX)
                .key_condition_expression("owner_shard = :p")
                .expression_attribute_values(":p", AttributeValue::S(format!("{owner}#schedules")))
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map(|o| (o.items.unwrap_or_default(), o.last_evaluated_key))
                .map_err(|e| format!("query {table}: {}", describe(&e)))?,
            None => dynamodb
                .scan()
                .table_name(table)
                .filter_expression("begins_with(pk, :prefix)")
                .expression_attribute_values(":prefix", AttributeValue::S("schedule#".into()))
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map(|o| (o.items.unwrap_or_default(), o.last_evaluated_key))
                .map_err(|e| format!("scan {table}: {}", describe(&e)))?,
        };
        for item in items {
            let Some(AttributeValue::S(text)) = item.get("schedule") else {
                continue;
            };
            match serde_json::from_str::<Schedule>(text) {
                Ok(schedule) => found.push(schedule),
                Err(e) => eprintln!("a schedule item that does not decode: {e}"),
            }
        }
        start_key = next;
        if start_key.is_none() {
            break;
        }
    }
    found.sort_by_key(|s| s.created_at);
    found.truncate(limit);
    Ok(found)
}

/// One line per schedule (or JSON with stable keys).
pub(crate) fn render(schedules: &[Schedule], json: bool) -> String {
    if json {
        let rows: Vec<_> = schedules
            .iter()
            .map(|s| {
                json!({
                    "id": s.id, "owner": s.owner, "cron": s.cron, "rate": s.rate, "timezone": s.timezone,
                    "job_type": s.job.job_type, "paused": s.paused,
                    "next_fire_at": s.next_fire_at.map(rfc3339),
                    "last_tick": s.recent_runs.first().map(|r| json!({
                        "tick_at": rfc3339(r.tick_at), "outcome": r.outcome.as_str(), "job_id": r.job_id,
                    })),
                })
            })
            .collect();
        return format!(
            "{}\n",
            serde_json::to_string_pretty(&json!({ "schedules": rows })).unwrap_or_default()
        );
    }
    if schedules.is_empty() {
        return "no schedules\n".into();
    }
    let mut out = String::new();
    for s in schedules {
        let when = s.cron.as_deref().map(|c| format!("cron {c:?} {}", s.timezone));
        let when = when
            .or_else(|| s.rate.as_ref().map(|r| format!("every {r}")))
            .unwrap_or_default();
        let next = if s.paused {
            "paused".to_owned()
        } else {
            s.next_fire_at.map_or("ended".into(), rfc3339)
        };
        let last = s.recent_runs.first().map_or("never ticked".to_owned(), |r| {
            format!("last {} {}", rfc3339(r.tick_at), r.outcome.as_str())
        });
        out.push_str(&format!(
            "{}  {}  {}  {}  next {}  {}\n",
            s.id, s.owner, s.job.job_type, when, next, last
        ));
    }
    out
}

/// Pauses (`pause`) or resumes each schedule of `ids`.
pub(crate) async fn pause(config: &Config, ids: &[String], pause: bool) -> ExitCode {
    let clients = AwsClients::load().await;
    let store = clients.job_store(config);
    let mut failed = false;
    for id in ids {
        match set_paused(store.as_ref(), id, pause).await {
            Ok(line) => println!("{id}: {line}"),
            Err(e) => {
                eprintln!("{id}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn set_paused(store: &dyn JobStore, id: &str, pause: bool) -> Result<String, String> {
    let change = change_schedule(store, id, |stored, _now| async move {
        Ok::<_, String>((stored.paused != pause).then_some(Schedule {
            paused: pause,
            ..stored
        }))
    });
    match change.await.map_err(|e| e.to_string())? {
        Changed::AlreadySo(_) => Ok(format!("already {}", if pause { "paused" } else { "running" })),
        Changed::Written(changed) => Ok(match changed.next_fire_at {
            Some(next) if !pause => format!("resumed, next tick {}", rfc3339(next)),
            _ => "paused".into(),
        }),
    }
}
