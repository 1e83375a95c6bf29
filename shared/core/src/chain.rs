//! Job chains: a job submitted with `then` runs its steps one after another.
//!
//! Each step is a job of its own. When a step succeeds, the worker creates
//! the next one in the same write that ends the step (a DynamoDB
//! transaction), under an id derived from the step's own id and creation
//! time ([`next_step_id`]), so a retried or repeated finish can never
//! create two, and a chain started again under a reused `Idempotency-Key`
//! (once the first one's records expired) never meets the first one's steps. The next step has the owner, priority, attempts and timeout
//! of the one before, and its input may name a result of it:
//! `{"from_previous": "summary.csv"}` anywhere in a step's input becomes
//! `{"key": "<that result's object key>"}`, a key the step (and only it) may
//! read. A step that fails, is cancelled or is dead-lettered ends the chain;
//! so does a cancel request on a step that still succeeds.

use serde_json::{Map, Value};

use crate::access::{input_prefix, is_plain_segment};
use crate::record::{hash_json, JobId, JobRecord, JobStatus, NewJob, ResultObject};

/// The most steps a chain may have after its first job.
pub const MAX_CHAIN_STEPS: usize = 5;

/// The key of an input placeholder naming a result of the previous step.
pub const FROM_PREVIOUS: &str = "from_previous";

pub use crate::record::ChainLink;
pub use longrun_types::api::ChainStep;

/// The id of the step after `job`, when `job` succeeded with steps left
/// and no cancel request stopped the chain (the step was created with its end).
pub fn next_job_id(job: &JobRecord) -> Option<JobId> {
    let link = job.chain.as_ref()?;
    (job.status == JobStatus::Succeeded && !link.then.is_empty() && !job.cancel_requested)
        .then(|| next_step_id(job))
        .flatten()
}

/// The id the step after `job` has, or gets when `job` succeeds: derived
/// from `job`'s id and creation time (from its id alone in chains started
/// before: [`ChainLink::id_scheme`]). `None` for a job in no chain.
pub fn next_step_id(job: &JobRecord) -> Option<JobId> {
    let link = job.chain.as_ref()?;
    Some(match link.id_scheme {
        1 => JobId::next_in_chain_v1(&job.id),
        _ => JobId::next_in_chain(&job.id, job.created_at),
    })
}

/// Every `{"from_previous": name}` placeholder in `input`: the names, in order.
pub fn placeholders(input: &Value) -> Vec<String> {
    let mut names = Vec::new();
    visit_placeholders(input, &mut |name| names.push(name.to_owned()));
    names
}

fn visit_placeholders(value: &Value, found: &mut impl FnMut(&str)) {
    match value {
        Value::Object(map) => match placeholder_name(map) {
            Some(name) => found(name),
            None => map.values().for_each(|v| visit_placeholders(v, found)),
        },
        Value::Array(items) => items.iter().for_each(|v| visit_placeholders(v, found)),
        _ => {}
    }
}

/// `Some(name)` when `map` is exactly `{"from_previous": "<name>"}`.
fn placeholder_name(map: &Map<String, Value>) -> Option<&str> {
    match (map.len(), map.get(FROM_PREVIOUS)) {
        (1, Some(Value::String(name))) => Some(name),
        _ => None,
    }
}

/// `input` with every placeholder replaced by `{"key": key_of(name)}`.
pub fn resolve_placeholders(input: &Value, key_of: &impl Fn(&str) -> String) -> Value {
    match input {
        Value::Object(map) => match placeholder_name(map) {
            Some(name) => serde_json::json!({ "key": key_of(name) }),
            None => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), resolve_placeholders(v, key_of)))
                    .collect(),
            ),
        },
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve_placeholders(v, key_of)).collect()),
        other => other.clone(),
    }
}

/// The input a step is validated with at submit: placeholders stand for a
/// key under `owner`'s own inputs, which every job type accepts where it
/// takes an input key. `Err(name)` for a placeholder whose name is not a
/// plain object name.
pub fn input_for_validation(input: &Value, owner: &str) -> Result<Value, String> {
    if let Some(bad) = placeholders(input).into_iter().find(|name| !is_plain_segment(name)) {
        return Err(bad);
    }
    let prefix = input_prefix(owner);
    Ok(resolve_placeholders(input, &|name| format!("{prefix}chain/{name}")))
}

/// The record of the step after `previous`, which just succeeded with
/// `results` in a run whose results live under `results/<id>/<run>/`;
/// `None` when `previous` is the last step (or in no chain). `queue` is the
/// queue the step's type and priority route to.
pub fn next_step(
    previous: &JobRecord,
    results: &[ResultObject],
    queue: &str,
    now_ms: i64,
    live_seconds: i64,
    enqueue_grace_ms: i64,
) -> Option<JobRecord> {
    let link = previous.chain.as_ref()?;
    let (step, rest) = link.then.split_first()?;
    let key_of = |name: &str| match results.iter().find(|r| r.name == name) {
        Some(result) => result.key.clone(),
        // No such result: the step fails `input_not_found`, naming it.
        None => format!("results/{}/missing/{name}", previous.id),
    };
    let input = resolve_placeholders(&step.input, &key_of);
    let readable_results = placeholders(&step.input).iter().map(|name| key_of(name)).collect();
    let id = next_step_id(previous)?;
    let mut job = JobRecord::new_queued(
        NewJob {
            request_hash: hash_json(&serde_json::json!({"chain_step_of": previous.id, "type": step.job_type})),
            id: id.clone(),
            owner: previous.owner.clone(),
            job_type: step.job_type.clone(),
            queue: queue.to_owned(),
            priority: previous.priority,
            input,
            max_attempts: previous.max_attempts,
            timeout_seconds: previous.timeout_seconds,
            delay_seconds: 0,
            callback: previous.callback.as_ref().map(|c| crate::record::Callback::new(&c.url)),
            chain: None,
            // Its type's, set by the worker that creates it (it knows the types).
            limit: None,
            schedule: None,
            run_at: None,
        },
        now_ms,
        live_seconds,
        enqueue_grace_ms,
    );
    job.chain = Some(ChainLink {
        chain_id: link.chain_id.clone(),
        step: link.step + 1,
        previous_job_id: Some(previous.id.clone()),
        readable_results,
        then: rest.to_vec(),
        id_scheme: crate::record::CHAIN_ID_SCHEME,
    });
    Some(job)
}

/// The chain's overall status, given its steps' records in order (as far
/// as they exist): the status of the first step that has not succeeded;
/// SUCCEEDED when the last step did; CANCELLED when a step succeeded with
/// steps left but no next step was created (its cancel request stopped the
/// chain).
pub fn chain_status(steps: &[JobRecord]) -> JobStatus {
    for job in steps {
        if job.status != JobStatus::Succeeded {
            return job.status;
        }
    }
    match steps.last() {
        Some(last) if last.chain.as_ref().is_some_and(|l| !l.then.is_empty()) => {
            if last.cancel_requested {
                JobStatus::Cancelled
            } else {
                // Created in the same write: only a read racing that write sees this.
                JobStatus::Queued
            }
        }
        Some(_) => JobStatus::Succeeded,
        None => JobStatus::Queued,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::queued_job_at;
    use serde_json::json;

    fn result(name: &str, key: &str) -> ResultObject {
        ResultObject {
            name: name.into(),
            key: key.into(),
            content_type: "text/csv".into(),
            bytes: 1,
        }
    }

    #[test]
    fn the_next_step_has_a_derived_id_the_parents_limits_and_its_placeholders_resolved() {
        let mut first = queued_job_at("alice", "report", json!({}), 1_000);
        let then = vec![
            ChainStep {
                job_type: "report".into(),
                input: json!({"source": {"from_previous": "summary.csv"}, "group_by": ["region"]}),
            },
            ChainStep {
                job_type: "sleep".into(),
                input: json!({"seconds": 1}),
            },
        ];
        first.chain = Some(ChainLink::first(&first.id, then));
        first.max_attempts = 7;
        let results = [result("summary.csv", "results/a/run/summary.csv")];
        let next = next_step(&first, &results, "fast", 2_000, 3_600, 60_000).unwrap();
        assert_eq!(next.id, JobId::next_in_chain(&first.id, 1_000));
        assert_eq!(
            next_step(&first, &results, "fast", 2_500, 3_600, 60_000).unwrap().id,
            next.id,
            "derived, stable"
        );
        let mut again = first.clone();
        again.created_at = 5_000;
        assert_ne!(
            next_step(&again, &results, "fast", 6_000, 3_600, 60_000).unwrap().id,
            next.id,
            "a later record under the same id (a reused key) starts other steps"
        );
        let mut older = first.clone();
        older.chain.as_mut().unwrap().id_scheme = 1;
        assert_eq!(
            next_step_id(&older),
            Some(JobId::next_in_chain_v1(&first.id)),
            "chains started before keep their ids"
        );
        assert_ne!(next.id, first.id);
        assert_eq!((next.owner.as_str(), next.max_attempts), ("alice", 7));
        assert_eq!(next.input["source"], json!({"key": "results/a/run/summary.csv"}));
        assert_eq!(next.input["group_by"], json!(["region"]));
        let link = next.chain.as_ref().unwrap();
        assert_eq!((link.step, link.chain_id.clone()), (1, first.id.clone()));
        assert_eq!(link.previous_job_id.as_ref(), Some(&first.id));
        assert_eq!(link.readable_results, ["results/a/run/summary.csv"]);
        assert_eq!(link.then.len(), 1);
        assert_eq!(next.status, JobStatus::Queued);
        assert!(next.due_at.is_some(), "the reconciler sends it if its message is lost");

        let last = next_step(&next, &[], "fast", 3_000, 3_600, 60_000).unwrap();
        assert!(last.chain.as_ref().unwrap().then.is_empty());
        assert!(
            next_step(&last, &[], "fast", 4_000, 3_600, 60_000).is_none(),
            "the chain ends"
        );
    }

    #[test]
    fn a_missing_result_resolves_to_a_key_that_does_not_exist() {
        let mut first = queued_job_at("alice", "report", json!({}), 1_000);
        let step = ChainStep {
            job_type: "report".into(),
            input: json!({"source": {"from_previous": "nope.csv"}}),
        };
        first.chain = Some(ChainLink::first(&first.id, vec![step]));
        let next = next_step(&first, &[], "fast", 2_000, 3_600, 60_000).unwrap();
        let key = next.input["source"]["key"].as_str().unwrap();
        assert!(key.ends_with("/missing/nope.csv"), "{key}");
    }

    #[test]
    fn placeholders_are_found_anywhere_and_must_name_plain_objects() {
        let input = json!({"a": [{"from_previous": "x.csv"}], "b": {"c": {"from_previous": "y.json"}},
                           "d": {"from_previous": "z", "other": 1}});
        assert_eq!(placeholders(&input), ["x.csv", "y.json"]);
        let checked = input_for_validation(&input, "alice").unwrap();
        assert!(checked["a"][0]["key"]
            .as_str()
            .unwrap()
            .starts_with(&input_prefix("alice")));
        assert_eq!(checked["d"], input["d"], "not exactly a placeholder: left alone");
        for bad in ["../x", "", "a/b", ".hidden"] {
            assert_eq!(
                input_for_validation(&json!({"from_previous": bad}), "alice"),
                Err(bad.to_owned())
            );
        }
    }

    #[test]
    fn the_chain_status_is_the_first_step_that_did_not_succeed() {
        let mut a = queued_job_at("alice", "sleep", json!({}), 0);
        a.chain = Some(ChainLink::first(
            &a.id,
            vec![ChainStep {
                job_type: "sleep".into(),
                input: json!({}),
            }],
        ));
        assert_eq!(chain_status(std::slice::from_ref(&a)), JobStatus::Queued);
        a.status = JobStatus::Running;
        assert_eq!(chain_status(std::slice::from_ref(&a)), JobStatus::Running);
        a.status = JobStatus::Succeeded;
        let mut b = next_step(&a, &[], "fast", 0, 60, 60).unwrap();
        assert_eq!(chain_status(&[a.clone(), b.clone()]), JobStatus::Queued);
        b.status = JobStatus::Failed;
        assert_eq!(chain_status(&[a.clone(), b.clone()]), JobStatus::Failed);
        b.status = JobStatus::Succeeded;
        assert_eq!(chain_status(&[a.clone(), b]), JobStatus::Succeeded);
        a.cancel_requested = true;
        assert_eq!(chain_status(&[a]), JobStatus::Cancelled, "stopped before its next step");
    }
}
