//! `dlq`: what the dead-letter queues hold. Messages are received (never
//! deleted) with a short hold so that one listing pages through them, and
//! are made visible again (ChangeMessageVisibility to 0) as soon as they
//! have been read; each job they name is looked up in the table.

use std::collections::HashSet;

use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, MessageSystemAttributeName};
use longrun_aws::describe;
use longrun_core::ports::JobStore;
use longrun_core::time::rfc3339;
use longrun_core::{JobId, JobRecord};
use serde::Serialize;

use crate::format::{human_duration, one_line, table};
use crate::queues::QueueState;

/// How long a message read by a listing stays hidden at most: long enough
/// for the listing to page past it, and what bounds the hiding if the
/// release after it fails (or the process is killed).
pub const HOLD_SECONDS: i32 = 30;

/// One message of a dead-letter queue, as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub message_id: String,
    pub body: String,
    /// When it was first sent (to the queue it dead-lettered from; SQS keeps it).
    pub sent_at: Option<i64>,
    /// SQS's ApproximateReceiveCount, this listing's receive included.
    pub receive_count: Option<u32>,
}

/// The job a message body names (`{"job_id": "…", …}`); `None` for poison.
pub fn job_id_of(body: &str) -> Option<JobId> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    JobId::parse(value.get("job_id")?.as_str()?)
}

/// Receives up to `limit` messages of the queue at `url` without deleting
/// any, then makes every one it received visible again. The messages, and
/// warnings about any it could not release (they come back by themselves
/// after [`HOLD_SECONDS`]).
pub async fn peek(sqs: &aws_sdk_sqs::Client, url: &str, limit: usize) -> (Vec<Received>, Vec<String>) {
    let mut received = Vec::new();
    let mut handles = Vec::new();
    let mut seen = HashSet::new();
    let mut warnings = Vec::new();
    while received.len() < limit {
        let want = (limit - received.len()).min(10) as i32;
        let answer = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(want)
            .visibility_timeout(HOLD_SECONDS)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await;
        let messages = match answer {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(e) => {
                warnings.push(format!("receive: {}", describe(&e)));
                break;
            }
        };
        if messages.is_empty() {
            break;
        }
        for message in messages {
            if let Some(handle) = message.receipt_handle() {
                handles.push(handle.to_owned());
            }
            let id = message.message_id().unwrap_or_default().to_owned();
            if !seen.insert(id.clone()) {
                continue;
            }
            let attribute = |name: MessageSystemAttributeName| {
                message
                    .attributes()
                    .and_then(|a| a.get(&name))
                    .and_then(|v| v.parse().ok())
            };
            received.push(Received {
                message_id: id,
                body: message.body().unwrap_or_default().to_owned(),
                sent_at: attribute(MessageSystemAttributeName::SentTimestamp),
                receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                    .map(|n| n.clamp(0, i64::from(u32::MAX)) as u32),
            });
        }
    }
    warnings.extend(release(sqs, url, &handles).await);
    (received, warnings)
}

/// Makes the received messages visible again at once; a warning for each
/// batch or message that could not be.
async fn release(sqs: &aws_sdk_sqs::Client, url: &str, handles: &[String]) -> Vec<String> {
    let mut warnings = Vec::new();
    for chunk in handles.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        match sqs
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => {
                for failed in output.failed() {
                    warnings.push(format!(
                        "a message could not be made visible again ({}): it is back within {HOLD_SECONDS} s",
                        failed.message().unwrap_or(failed.code())
                    ));
                }
            }
            Err(e) => warnings.push(format!(
                "{} messages could not be made visible again ({}): they are back within {HOLD_SECONDS} s",
                chunk.len(),
                describe(&e)
            )),
        }
    }
    warnings
}

/// What the table says of a dead letter's job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JobSummary {
    pub status: String,
    pub owner: String,
    #[serde(rename = "type")]
    pub job_type: String,
    pub queue: String,
    pub updated_at: String,
    /// The job's last error (`{code, message}`), if any.
    pub error: Option<ErrorSummary>,
    /// The last webhook delivery error, for the webhook dead-letter queue.
    pub webhook_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorSummary {
    pub code: String,
    pub message: String,
}

impl From<&JobRecord> for JobSummary {
    fn from(job: &JobRecord) -> Self {
        JobSummary {
            status: job.status.as_str().to_owned(),
            owner: job.owner.clone(),
            job_type: job.job_type.clone(),
            queue: job.queue.clone(),
            updated_at: rfc3339(job.updated_at),
            error: job.error.as_ref().map(|e| ErrorSummary {
                code: e.code.clone(),
                message: e.message.clone(),
            }),
            webhook_error: job.callback.as_ref().and_then(|c| c.last_error.clone()),
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub message_id: String,
    /// The job the body names; `null` for poison.
    pub job_id: Option<String>,
    pub sent_at: Option<String>,
    pub sent_age_seconds: Option<i64>,
    pub receive_count: Option<u32>,
    /// The job's record now; `null` for poison or a job the table no longer has.
    pub job: Option<JobSummary>,
    /// The raw body, when it names no job.
    pub poison_body: Option<String>,
    /// Why the job is missing, or could not be read.
    pub note: Option<String>,
}

/// The report's entry for a received message, looking its job up in `store`.
pub async fn entry(store: &dyn JobStore, message: Received, now_ms: i64) -> Entry {
    let job_id = job_id_of(&message.body);
    let (job, note) = match &job_id {
        None => (None, Some("poison: the body names no job".to_owned())),
        Some(id) => match store.get(id).await {
            Ok(Some(job)) => (Some(JobSummary::from(&job)), None),
            Ok(None) => (
                None,
                Some("no such job in the table (expired, or never written)".to_owned()),
            ),
            Err(e) => (None, Some(format!("could not read the job: {e}"))),
        },
    };
    Entry {
        message_id: message.message_id,
        sent_at: message.sent_at.map(rfc3339),
        sent_age_seconds: message.sent_at.map(|at| ((now_ms - at) / 1000).max(0)),
        receive_count: message.receive_count,
        poison_body: job_id.is_none().then_some(message.body),
        job_id: job_id.map(|id| id.to_string()),
        job,
        note,
    }
}

/// One dead-letter queue's part of the report.
pub struct QueueReport<'a> {
    pub state: &'a QueueState,
    /// The labels of the queues whose dead letters it catches.
    pub sources: Vec<&'a str>,
    pub entries: Vec<Entry>,
    pub warnings: Vec<String>,
}

/// What `dlq` says about how it reads, for the output.
pub fn visibility_note() -> String {
    format!(
        "read without deleting: each message is received with a {HOLD_SECONDS} s hold (so a listing pages through \
         them) and made visible again (ChangeMessageVisibility 0) right after; receive counts include this read"
    )
}

#[derive(Serialize)]
struct QueueJson<'a> {
    queue: &'a str,
    logical_id: Option<&'a str>,
    name: Option<&'a str>,
    sqs_name: &'a str,
    url: &'a str,
    dead_letters_of: &'a [&'a str],
    visible: Option<u64>,
    in_flight: Option<u64>,
    shown: usize,
    messages: &'a [Entry],
    warnings: &'a [String],
    error: Option<&'a str>,
}

/// The `dlq` report, as JSON or text.
pub fn render(reports: &[QueueReport], source: &str, limit: usize, now_ms: i64, json: bool) -> String {
    if json {
        let queues: Vec<QueueJson> = reports
            .iter()
            .map(|r| QueueJson {
                queue: r.state.queue.label(),
                logical_id: r.state.queue.logical_id.as_deref(),
                name: r.state.queue.name.as_deref(),
                sqs_name: r.state.queue.sqs_name(),
                url: &r.state.queue.url,
                dead_letters_of: &r.sources,
                visible: r.state.visible,
                in_flight: r.state.in_flight,
                shown: r.entries.len(),
                messages: &r.entries,
                warnings: &r.warnings,
                error: r.state.error.as_deref(),
            })
            .collect();
        let value = serde_json::json!({
            "source": source,
            "generated_at": rfc3339(now_ms),
            "limit": limit,
            "visibility": visibility_note(),
            "dead_letter_queues": queues,
        });
        return serde_json::to_string_pretty(&value).unwrap_or_default();
    }
    let mut out = format!("{source}\n");
    for report in reports {
        let state = report.state;
        let of = if report.sources.is_empty() {
            String::new()
        } else {
            format!(" (dead letters of {})", report.sources.join(", "))
        };
        let count = |n: Option<u64>| n.map_or("?".to_owned(), |n| n.to_string());
        out.push_str(&format!(
            "\n{}{of}: {} visible, {} in flight",
            state.queue.label(),
            count(state.visible),
            count(state.in_flight)
        ));
        if let Some(error) = &state.error {
            out.push_str(&format!("; error: {}\n", one_line(error, 120)));
            continue;
        }
        if report.entries.is_empty() {
            out.push_str("; nothing to show\n");
        } else {
            out.push_str(&format!("; showing {}\n", report.entries.len()));
            let rows: Vec<Vec<String>> = report.entries.iter().map(row).collect();
            let text = table(&["JOB", "SENT", "RECEIVES", "STATUS", "LAST ERROR / BODY"], &rows, &[2]);
            for line in text.lines() {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        }
        for warning in &report.warnings {
            out.push_str(&format!("  warning: {warning}\n"));
        }
    }
    out.push_str(&format!("\nMessages are {}.\n", visibility_note()));
    out
}

fn row(entry: &Entry) -> Vec<String> {
    let sent = match (&entry.sent_at, entry.sent_age_seconds) {
        (Some(at), Some(age)) => format!("{at} ({} ago)", human_duration(age * 1000)),
        _ => "?".to_owned(),
    };
    let (status, detail) = match (&entry.job, &entry.poison_body) {
        (Some(job), _) => {
            let mut detail = job
                .error
                .as_ref()
                .map(|e| format!("{}: {}", e.code, e.message))
                .unwrap_or_else(|| "-".to_owned());
            if let Some(webhook) = &job.webhook_error {
                detail = format!("{detail}; webhook: {webhook}");
            }
            (job.status.clone(), detail)
        }
        (None, Some(body)) => ("poison".to_owned(), format!("body: {body}")),
        (None, None) => ("?".to_owned(), entry.note.clone().unwrap_or_default()),
    };
    vec![
        entry
            .job_id
            .clone()
            .unwrap_or_else(|| format!("(message {})", entry.message_id)),
        sent,
        entry.receive_count.map_or("?".to_owned(), |n| n.to_string()),
        status,
        one_line(&detail, 100),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_name_a_job_or_are_poison() {
        let id = JobId::random();
        assert_eq!(
            job_id_of(&format!(r#"{{"job_id":"{id}","enqueued_at":1}}"#)),
            Some(id.clone())
        );
        assert_eq!(
            job_id_of(&format!(r#"{{"job_id":"{id}","redrives":2,"extra":true}}"#)),
            Some(id)
        );
        for poison in ["", "hello", r#"{"job_id": 5}"#, r#"{"job_id": "not-a-uuid"}"#, "[1,2]"] {
            assert_eq!(job_id_of(poison), None, "{poison}");
        }
    }

    #[test]
    fn a_poison_row_shows_its_body_and_a_job_row_its_error() {
        let poison = Entry {
            message_id: "m1".into(),
            job_id: None,
            sent_at: Some(rfc3339(1_000)),
            sent_age_seconds: Some(65),
            receive_count: Some(2),
            job: None,
            poison_body: Some("not json\nat all".into()),
            note: Some("poison".into()),
        };
        let cells = row(&poison);
        assert_eq!(cells[0], "(message m1)");
        assert!(cells[1].ends_with("(1m05s ago)"), "{}", cells[1]);
        assert_eq!((cells[2].as_str(), cells[3].as_str()), ("2", "poison"));
        assert_eq!(cells[4], "body: not json at all");

        let job = Entry {
            job_id: Some("j".into()),
            job: Some(JobSummary {
                status: "DEAD_LETTERED".into(),
                owner: "o".into(),
                job_type: "sleep".into(),
                queue: "fast".into(),
                updated_at: rfc3339(0),
                error: Some(ErrorSummary {
                    code: "dead_lettered".into(),
                    message: "handler_panicked".into(),
                }),
                webhook_error: None,
            }),
            poison_body: None,
            note: None,
            ..poison
        };
        let cells = row(&job);
        assert_eq!(
            (cells[0].as_str(), cells[3].as_str(), cells[4].as_str()),
            ("j", "DEAD_LETTERED", "dead_lettered: handler_panicked")
        );
    }
}
