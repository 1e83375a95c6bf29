//! [`JobQueue`] on SQS: one queue URL per logical queue name.
//!
//! Every message sent carries the sending invocation's X-Ray trace header
//! (`_X_AMZN_TRACE_ID`, which the Lambda runtime sets per invocation) as
//! the `AWSTraceHeader` system attribute, so the SQS-triggered invocation
//! that receives it continues the same trace: submit → queue → worker (and
//! a retry, a continuation, a chain's next step, a webhook delivery) is one
//! trace in X-Ray.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageSystemAttributeNameForSends, MessageSystemAttributeValue, QueueAttributeName};

use super::describe;
use longrun_core::ports::{JobMessage, JobQueue, MessageCounts, QueueError};

/// The work queues as a [`JobQueue`].
pub struct SqsJobQueue {
    client: aws_sdk_sqs::Client,
    urls: BTreeMap<String, String>,
}

impl SqsJobQueue {
    /// The queues `urls` maps from logical name to queue URL, through `client`.
    pub fn new(client: aws_sdk_sqs::Client, urls: BTreeMap<String, String>) -> Self {
        SqsJobQueue { client, urls }
    }

    fn url(&self, queue: &str) -> Result<&str, QueueError> {
        self.urls
            .get(queue)
            .map(String::as_str)
            .ok_or_else(|| QueueError::UnknownQueue(queue.to_owned()))
    }

    /// The queue's approximate message counts: one GetQueueAttributes.
    async fn counts(&self, queue: &str, with_in_flight: bool) -> Result<SqsCounts, QueueError> {
        let mut request = self
            .client
            .get_queue_attributes()
            .queue_url(self.url(queue)?)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed);
        if with_in_flight {
            request = request.attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        }
        let output = request
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(describe(&e)))?;
        let attributes = output.attributes.unwrap_or_default();
        let count =
            |name: QueueAttributeName| -> u64 { attributes.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0) };
        Ok(SqsCounts {
            waiting: count(QueueAttributeName::ApproximateNumberOfMessages),
            delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }
}

/// A queue's approximate message counts, as SQS reports them.
struct SqsCounts {
    waiting: u64,
    delayed: u64,
    in_flight: u64,
}

/// The current invocation's X-Ray trace header as an SQS system attribute,
/// when there is one (on Lambda, with tracing on): its `Root`, `Parent` and
/// `Sampled` only. Not `Lineage`, with which Lambda stops a chain of
/// invocations after 16 rounds through the same function: the worker's
/// continuations and the webhook function's waits go round on purpose.
fn trace_header() -> Option<MessageSystemAttributeValue> {
    let raw = std::env::var("_X_AMZN_TRACE_ID").ok()?;
    let trace = propagated_trace(&raw)?;
    MessageSystemAttributeValue::builder()
        .data_type("String")
        .string_value(trace)
        .build()
        .ok()
}

/// The parts of a trace header a message carries on: `Root`, `Parent`,
/// `Sampled`; `None` without a `Root`.
pub(crate) fn propagated_trace(header: &str) -> Option<String> {
    let kept: Vec<&str> = header
        .split(';')
        .map(str::trim)
        .filter(|part| ["Root=", "Parent=", "Sampled="].iter().any(|k| part.starts_with(k)))
        .collect();
    kept.iter().any(|p| p.starts_with("Root=")).then(|| kept.join(";"))
}

#[async_trait]
impl JobQueue for SqsJobQueue {
    async fn enqueue(&self, queue: &str, message: &JobMessage, delay_seconds: u32) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(|e| QueueError::Unavailable(e.to_string()))?;
        let mut request = self
            .client
            .send_message()
            .queue_url(self.url(queue)?)
            .message_body(body)
            .delay_seconds(delay_seconds.min(900) as i32);
        if let Some(trace) = trace_header() {
            request = request.message_system_attributes(MessageSystemAttributeNameForSends::AwsTraceHeader, trace);
        }
        request
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(describe(&e)))?;
        Ok(())
    }

    async fn depth(&self, queue: &str) -> Result<u64, QueueError> {
        let counts = self.counts(queue, false).await?;
        Ok(counts.waiting + counts.delayed)
    }

    async fn message_counts(&self, queue: &str) -> Result<MessageCounts, QueueError> {
        let counts = self.counts(queue, true).await?;
        Ok(MessageCounts {
            waiting: counts.waiting + counts.delayed,
            in_flight: counts.in_flight,
        })
    }

    async fn change_visibility(&self, queue: &str, receipt_handle: &str, seconds: u32) -> Result<(), QueueError> {
        let result = self
            .client
            .change_message_visibility()
            .queue_url(self.url(queue)?)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds.min(43_200) as i32)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(service) if service.is_receipt_handle_is_invalid() || service.is_message_not_inflight() => {
                    Err(QueueError::StaleReceipt)
                }
                _ => Err(QueueError::Unavailable(describe(&err))),
            },
        }
    }
}
