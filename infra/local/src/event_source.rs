//! Plays the Lambda SQS event source mapping: long-polls a queue with as
//! many pollers as the mapping's maximum concurrency, hands each batch (up
//! to `BatchSize`) to the worker handler as the same `SqsEvent` Lambda
//! sends (the worker's or the dead-letter function's), with a context whose deadline is the function's timeout, and
//! deletes what succeeded. With `ReportBatchItemFailures` only the listed
//! messages stay; an invalid identifier, a panic or a timeout fails the whole
//! batch, and every message comes back after its visibility timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use longrun_aws::{describe, AwsClients};

use crate::functions::LocalFunction;

/// How long one ReceiveMessage waits for messages.
const LONG_POLL_SECONDS: i32 = 1;

/// One queue → function mapping.
#[derive(Clone)]
pub struct EventSource {
    /// The queue polled.
    pub queue_url: String,
    /// Its ARN, as the events carry it.
    pub queue_arn: String,
    /// Messages per invocation at most.
    pub batch_size: u32,
    /// Invocations at once at most.
    pub concurrency: u32,
    /// The function invoked.
    pub function: Arc<LocalFunction>,
    /// The region the events name.
    pub region: String,
}

/// Starts the mapping's pollers; they run until the process ends.
pub fn start(source: EventSource, clients: AwsClients) -> Vec<tokio::task::JoinHandle<()>> {
    (0..source.concurrency.max(1))
        .map(|_| {
            let source = source.clone();
            let clients = clients.clone();
            tokio::spawn(async move { poll(source, clients).await })
        })
        .collect()
}

async fn poll(source: EventSource, clients: AwsClients) {
    loop {
        let received = clients
            .sqs
            .receive_message()
            .queue_url(&source.queue_url)
            .max_number_of_messages(source.batch_size.clamp(1, 10) as i32)
            .wait_time_seconds(LONG_POLL_SECONDS)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await;
        let messages = match received {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(err) => {
                tracing::warn!(error = %describe(&err), queue = %source.queue_url, "receive failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let to_delete = invoke(&source, &messages).await;
        delete(&clients, &source.queue_url, &messages, &to_delete).await;
    }
}

/// The `SqsEvent` Lambda would send for these messages.
pub fn sqs_event(source: &EventSource, messages: &[Message]) -> SqsEvent {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let attributes: HashMap<String, String> = m
                .attributes
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect();
            serde_json::json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": source.queue_arn,
                "awsRegion": source.region,
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records }))
        .expect("an SQS event built from messages deserialises")
}

/// Invokes the worker; returns the message ids to delete.
async fn invoke(source: &EventSource, messages: &[Message]) -> Vec<String> {
    let event = sqs_event(source, messages);
    let timeout = Duration::from_secs(u64::from(source.function.spec.timeout_seconds));
    let mut context = lambda_runtime::Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    context.deadline = (chrono::Utc::now().timestamp_millis() as u64) + timeout.as_millis() as u64;
    context.invoked_function_arn = source.function.arn.clone();
    let Some(function) = source.function.sqs().cloned() else {
        tracing::error!(function = %source.function.spec.logical_id, "not an SQS-triggered function");
        return Vec::new();
    };
    let mut invocation = tokio::spawn(async move { function.call(event, &context).await });
    let ids: Vec<String> = messages.iter().filter_map(|m| m.message_id.clone()).collect();
    let response: SqsBatchResponse = match tokio::time::timeout(timeout, &mut invocation).await {
        Ok(Ok(response)) => response,
        Ok(Err(panic)) => {
            tracing::error!(error = %panic, "worker invocation crashed; the whole batch comes back");
            return Vec::new();
        }
        Err(_) => {
            invocation.abort();
            tracing::error!(
                timeout_seconds = timeout.as_secs(),
                "worker invocation timed out; the whole batch comes back"
            );
            return Vec::new();
        }
    };
    let failed: Vec<&String> = response
        .batch_item_failures
        .iter()
        .map(|f| &f.item_identifier)
        .collect();
    if failed.iter().any(|id| !ids.contains(id)) {
        tracing::error!(
            ?failed,
            "batch item failures name unknown messages; the whole batch comes back"
        );
        return Vec::new();
    }
    ids.into_iter().filter(|id| !failed.contains(&id)).collect()
}

async fn delete(clients: &AwsClients, queue_url: &str, messages: &[Message], ids: &[String]) {
    let entries: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.message_id.as_ref().is_some_and(|id| ids.contains(id)))
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .set_receipt_handle(m.receipt_handle.clone())
                .build()
                .ok()
        })
        .collect();
    if entries.is_empty() {
        return;
    }
    if let Err(err) = clients
        .sqs
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        tracing::warn!(error = %describe(&err), "delete failed; the messages will be delivered again");
    }
}
