//! `queues`: every queue of the stack with its message counts (one
//! GetQueueAttributes each), and for the work queues the age of the oldest
//! waiting job, taken from the jobs table (no message is received from a
//! work queue: a receive counts towards its dead-letter redrive).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_sqs::types::QueueAttributeName;
use longrun_aws::{describe, due_shards, DUE_INDEX, DUE_SHARDS};
use longrun_core::time::rfc3339;
use longrun_core::webhook::{WEBHOOK_DEAD_LETTER_QUEUE, WEBHOOK_QUEUE};
use serde::Serialize;

use crate::format::{human_duration, table};
use crate::stack::QueueRef;

/// What a queue is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Carries job ids to workers (`fast`, `slow`, `urgent`, `bulk`).
    Work,
    /// Carries announcements of jobs' ends to the webhook function.
    Webhook,
    /// Catches what another queue's consumers could not handle.
    DeadLetter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Work => "work",
            Kind::Webhook => "webhook",
            Kind::DeadLetter => "dead-letter",
        }
    }
}

/// A queue as SQS describes it.
#[derive(Clone, Debug)]
pub struct QueueState {
    pub queue: QueueRef,
    pub kind: Kind,
    pub arn: Option<String>,
    /// The ARN its redrive policy sends dead letters to.
    pub dead_letter_target: Option<String>,
    pub visible: Option<u64>,
    pub delayed: Option<u64>,
    pub in_flight: Option<u64>,
    /// Why SQS could not describe it.
    pub error: Option<String>,
}

impl QueueState {
    /// The label of the queue its dead letters go to, among `all`.
    pub fn dead_letter_queue<'a>(&self, all: &'a [QueueState]) -> Option<&'a str> {
        let target = self.dead_letter_target.as_deref()?;
        all.iter()
            .find(|q| q.arn.as_deref() == Some(target))
            .map(|q| q.queue.label())
    }
}

/// The deadLetterTargetArn of a RedrivePolicy attribute.
pub fn redrive_target(policy: &str) -> Option<String> {
    let policy: serde_json::Value = serde_json::from_str(policy).ok()?;
    policy["deadLetterTargetArn"].as_str().map(str::to_owned)
}

/// What a queue is for: a dead-letter queue if another queue's redrive
/// policy names it (or its names say so), the webhook queue by its name,
/// else a work queue.
pub fn classify(queue: &QueueRef, arn: Option<&str>, targets: &[String]) -> Kind {
    let logical = queue.logical_id.as_deref().unwrap_or_default();
    let name = queue.name.as_deref().unwrap_or_default();
    if arn.is_some_and(|arn| targets.iter().any(|t| t == arn))
        || logical.contains("DeadLetter")
        || name == WEBHOOK_DEAD_LETTER_QUEUE
    {
        Kind::DeadLetter
    } else if name == WEBHOOK_QUEUE || logical.starts_with("Webhook") {
        Kind::Webhook
    } else {
        Kind::Work
    }
}

/// Asks SQS about each queue (one GetQueueAttributes each), finds the
/// dead-letter queues the source did not name through the redrive
/// policies (GetQueueUrl, then their own GetQueueAttributes), and sorts
/// them: work queues, webhook queue, dead-letter queues.
pub async fn survey(sqs: &aws_sdk_sqs::Client, queues: &[QueueRef]) -> Vec<QueueState> {
    let mut states = Vec::new();
    for queue in queues {
        states.push(describe_queue(sqs, queue.clone()).await);
    }
    let mut index = 0;
    while index < states.len() {
        let target = states[index].dead_letter_target.clone();
        index += 1;
        let Some(target) = target else { continue };
        let known = states.iter().any(|s| {
            s.arn.as_deref() == Some(target.as_str()) || target.ends_with(&format!(":{}", s.queue.sqs_name()))
        });
        if known {
            continue;
        }
        // arn:aws:sqs:<region>:<account>:<name>
        let parts: Vec<&str> = target.split(':').collect();
        let (Some(account), Some(name)) = (parts.get(4), parts.get(5)) else {
            continue;
        };
        match sqs
            .get_queue_url()
            .queue_name(*name)
            .queue_owner_aws_account_id(*account)
            .send()
            .await
        {
            Ok(found) => {
                let queue = QueueRef {
                    logical_id: None,
                    name: None,
                    url: found.queue_url.unwrap_or_default(),
                };
                states.push(describe_queue(sqs, queue).await);
            }
            Err(e) => states.push(QueueState {
                queue: QueueRef {
                    logical_id: None,
                    name: None,
                    url: (*name).to_owned(),
                },
                kind: Kind::DeadLetter,
                arn: Some(target.clone()),
                dead_letter_target: None,
                visible: None,
                delayed: None,
                in_flight: None,
                error: Some(describe(&e)),
            }),
        }
    }
    let targets: Vec<String> = states.iter().filter_map(|s| s.dead_letter_target.clone()).collect();
    for state in &mut states {
        state.kind = classify(&state.queue, state.arn.as_deref(), &targets);
    }
    states.sort_by(|a, b| (a.kind, a.queue.label()).cmp(&(b.kind, b.queue.label())));
    states
}

async fn describe_queue(sqs: &aws_sdk_sqs::Client, queue: QueueRef) -> QueueState {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(&queue.url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::QueueArn)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await;
    let mut state = QueueState {
        queue,
        kind: Kind::Work,
        arn: None,
        dead_letter_target: None,
        visible: None,
        delayed: None,
        in_flight: None,
        error: None,
    };
    match answer {
        Ok(output) => {
            let attributes = output.attributes.unwrap_or_default();
            let count = |name: QueueAttributeName| attributes.get(&name).and_then(|v| v.parse().ok());
            state.visible = count(QueueAttributeName::ApproximateNumberOfMessages);
            state.delayed = count(QueueAttributeName::ApproximateNumberOfMessagesDelayed);
            state.in_flight = count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
            state.arn = attributes.get(&QueueAttributeName::QueueArn).cloned();
            state.dead_letter_target = attributes
                .get(&QueueAttributeName::RedrivePolicy)
                .and_then(|p| redrive_target(p));
        }
        Err(e) => state.error = Some(describe(&e)),
    }
    state
}

/// What the table says of one job, enough to tell how long it has waited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sampled {
    pub id: String,
    pub queue: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    pub run_at: Option<i64>,
}

impl Sampled {
    /// Since when the job has been waiting for a worker: its `run_at`
    /// (delayed, or a retry's backoff), else when it was queued — created,
    /// or put back by a redrive, which leaves `updated_at` then.
    pub fn waiting_since(&self) -> i64 {
        self.created_at
            .max(self.updated_at.unwrap_or(0))
            .max(self.run_at.unwrap_or(0))
    }

    /// QUEUED and ready to run (not waiting for a later `run_at`).
    pub fn is_waiting_at(&self, now_ms: i64) -> bool {
        self.status == "QUEUED" && self.run_at.is_none_or(|at| at <= now_ms)
    }
}

/// The oldest waiting job of a queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Oldest {
    pub job_id: String,
    /// When it started waiting (RFC 3339).
    pub waiting_since: String,
    /// `now - waiting_since`, in whole seconds (never below 0).
    pub age_seconds: i64,
    /// The same in milliseconds.
    pub age_ms: i64,
}

/// The oldest waiting job of each queue among `sampled`, by queue name.
pub fn oldest_per_queue(sampled: &[Sampled], now_ms: i64) -> BTreeMap<String, Oldest> {
    let mut oldest: BTreeMap<String, &Sampled> = BTreeMap::new();
    for job in sampled.iter().filter(|j| j.is_waiting_at(now_ms)) {
        let entry = oldest.entry(job.queue.clone()).or_insert(job);
        if (job.waiting_since(), &job.id) < (entry.waiting_since(), &entry.id) {
            *entry = job;
        }
    }
    oldest
        .into_iter()
        .map(|(queue, job)| {
            let age_ms = (now_ms - job.waiting_since()).max(0);
            let oldest = Oldest {
                job_id: job.id.clone(),
                waiting_since: rfc3339(job.waiting_since()),
                age_seconds: age_ms / 1000,
                age_ms,
            };
            (queue, oldest)
        })
        .collect()
}

/// The jobs with the `per_shard` earliest `due_at` of each shard of the
/// `due` index (which holds the ids of QUEUED and RUNNING jobs only), read
/// back from the table with the attributes [`Sampled`] needs.
pub async fn sample_due(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    per_shard: usize,
) -> Result<Vec<Sampled>, String> {
    let mut ids = Vec::new();
    for shard in due_shards() {
        let output = dynamodb
            .query()
            .table_name(table)
            .index_name(DUE_INDEX)
            .key_condition_expression("#due_shard = :shard")
            .expression_attribute_names("#due_shard", "due_shard")
            .expression_attribute_values(":shard", AttributeValue::S(shard.clone()))
            .scan_index_forward(true)
            .limit(per_shard.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| format!("query {shard} of the due index: {}", describe(&e)))?;
        ids.extend(
            output
                .items()
                .iter()
                .filter_map(|item| item.get("pk").and_then(|pk| pk.as_s().ok()).cloned()),
        );
    }
    ids.sort();
    ids.dedup();
    let mut sampled = Vec::new();
    for chunk in ids.chunks(100) {
        let keys = chunk
            .iter()
            .map(|id| HashMap::from([("pk".to_owned(), AttributeValue::S(id.clone()))]))
            .collect::<Vec<_>>();
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .projection_expression("#pk, #queue, #status, #created_at, #updated_at, #run_at")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#queue", "queue")
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#created_at", "created_at")
                .expression_attribute_names("#updated_at", "updated_at")
                .expression_attribute_names("#run_at", "run_at")
                .build()
                .map_err(|e| e.to_string())?,
        );
        // Unprocessed keys (throttling) are asked again, a few times.
        for _ in 0..5 {
            let Some(keys) = request.take() else { break };
            let output = dynamodb
                .batch_get_item()
                .request_items(table, keys)
                .send()
                .await
                .map_err(|e| format!("read the due jobs: {}", describe(&e)))?;
            for item in output
                .responses
                .as_ref()
                .and_then(|r| r.get(table))
                .into_iter()
                .flatten()
            {
                if let Some(job) = sampled_from(item) {
                    sampled.push(job);
                }
            }
            request = output
                .unprocessed_keys
                .and_then(|mut unprocessed| unprocessed.remove(table))
                .filter(|k| !k.keys().is_empty());
        }
    }
    Ok(sampled)
}

fn sampled_from(item: &HashMap<String, AttributeValue>) -> Option<Sampled> {
    let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let n = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok());
    Some(Sampled {
        id: s("pk")?,
        queue: s("queue")?,
        status: s("status")?,
        created_at: n("created_at")?,
        updated_at: n("updated_at"),
        run_at: n("run_at"),
    })
}

/// How the ages are obtained, for the output.
pub fn age_method(per_shard: usize) -> String {
    format!(
        "from the jobs table, not SQS: the {per_shard} earliest-due entries of each of the {DUE_SHARDS} shards \
         of the `due` index are read back, and a queue's age is now minus when its oldest QUEUED job among \
         them became ready (run_at, else when it was queued or redriven); approximate, as the reconciler \
         moves due_at of jobs it re-sends"
    )
}

#[derive(Serialize)]
struct QueueJson<'a> {
    queue: &'a str,
    logical_id: Option<&'a str>,
    name: Option<&'a str>,
    sqs_name: &'a str,
    url: &'a str,
    kind: Kind,
    dead_letter_queue: Option<&'a str>,
    visible: Option<u64>,
    delayed: Option<u64>,
    in_flight: Option<u64>,
    oldest_queued: Option<&'a Oldest>,
    error: Option<&'a str>,
}

/// The `queues` report, as JSON (`json`) or a table.
pub fn render(
    states: &[QueueState],
    oldest: &BTreeMap<String, Oldest>,
    age_error: Option<&str>,
    source: &str,
    per_shard: usize,
    now_ms: i64,
    json: bool,
) -> String {
    let oldest_of = |state: &QueueState| {
        (state.kind == Kind::Work)
            .then(|| state.queue.name.as_deref().and_then(|name| oldest.get(name)))
            .flatten()
    };
    if json {
        let queues: Vec<QueueJson> = states
            .iter()
            .map(|s| QueueJson {
                queue: s.queue.label(),
                logical_id: s.queue.logical_id.as_deref(),
                name: s.queue.name.as_deref(),
                sqs_name: s.queue.sqs_name(),
                url: &s.queue.url,
                kind: s.kind,
                dead_letter_queue: s.dead_letter_queue(states),
                visible: s.visible,
                delayed: s.delayed,
                in_flight: s.in_flight,
                oldest_queued: oldest_of(s),
                error: s.error.as_deref(),
            })
            .collect();
        let value = serde_json::json!({
            "source": source,
            "generated_at": rfc3339(now_ms),
            "age_method": age_method(per_shard),
            "age_error": age_error,
            "queues": queues,
        });
        return serde_json::to_string_pretty(&value).unwrap_or_default();
    }
    let count = |n: Option<u64>| n.map_or("?".to_owned(), |n| n.to_string());
    let rows: Vec<Vec<String>> = states
        .iter()
        .map(|s| {
            let name = match (&s.queue.logical_id, &s.queue.name) {
                (Some(logical), Some(name)) => format!("{logical} ({name})"),
                _ => s.queue.label().to_owned(),
            };
            let note = if let Some(error) = &s.error {
                format!("error: {}", crate::format::one_line(error, 80))
            } else if s.kind == Kind::Work {
                match oldest_of(s) {
                    Some(o) => format!("{} ({})", human_duration(o.age_ms), o.job_id),
                    None if age_error.is_some() => "?".to_owned(),
                    None => "-".to_owned(),
                }
            } else {
                String::new()
            };
            let dead_letters = s
                .dead_letter_queue(states)
                .map(|d| format!("→ {d}"))
                .unwrap_or_default();
            vec![
                name,
                s.kind.as_str().to_owned(),
                count(s.visible),
                count(s.delayed),
                count(s.in_flight),
                note,
                dead_letters,
            ]
        })
        .collect();
    let mut out = format!("{source}\n");
    out.push_str(&table(
        &[
            "QUEUE",
            "KIND",
            "VISIBLE",
            "DELAYED",
            "IN-FLIGHT",
            "OLDEST QUEUED JOB",
            "DEAD LETTERS TO",
        ],
        &rows,
        &[2, 3, 4],
    ));
    out.push_str(&format!("\nOldest QUEUED job: {}.\n", age_method(per_shard)));
    out.push_str("Counts are SQS's approximate ones; `-`: no QUEUED job ready to run seen. Dead-letter contents: `longrun-admin dlq`.\n");
    if let Some(error) = age_error {
        out.push_str(&format!("Ages unavailable: {error}\n"));
    }
    out
}

#[cfg(test)]
mod tests;
