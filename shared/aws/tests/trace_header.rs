//! A message sent by the SQS adapter during a traced invocation carries
//! the invocation's X-Ray trace header as `AWSTraceHeader`, so the worker's
//! invocation continues the submit's trace. Runs against the emulator
//! (`make test`); its own process, so setting the variable touches no other test.

use longrun_aws::{AwsClients, SqsJobQueue};
use longrun_core::ports::{JobMessage, JobQueue};
use longrun_core::JobId;

#[tokio::test]
#[ignore = "needs the emulator: make test"]
async fn messages_carry_the_invocations_trace_header() {
    let clients = AwsClients::load().await;
    let url = clients
        .sqs
        .create_queue()
        .queue_name(format!("longrun-trace-{}", uuid::Uuid::new_v4()))
        .send()
        .await
        .expect("create a queue")
        .queue_url
        .expect("queue url");
    let queue = SqsJobQueue::new(
        clients.sqs.clone(),
        [("fast".to_owned(), url.clone())].into_iter().collect(),
    );
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    // Lambda's loop-detection lineage is not passed on (see `propagated_trace`).
    std::env::set_var("_X_AMZN_TRACE_ID", format!("{trace};Lineage=a87bd80c:1"));
    let message = JobMessage {
        job_id: JobId::random(),
        enqueued_at: 1,
        generation: 0,
        limit: None,
    };
    queue.enqueue("fast", &message, 0).await.expect("send");
    std::env::remove_var("_X_AMZN_TRACE_ID");
    queue.enqueue("fast", &message, 0).await.expect("send untraced");

    let mut headers = Vec::new();
    for _ in 0..10 {
        let received = clients
            .sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::AwsTraceHeader)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for m in received.messages() {
            let header = m
                .attributes()
                .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::AwsTraceHeader))
                .cloned();
            headers.push(header);
        }
        if headers.len() >= 2 {
            break;
        }
    }
    headers.sort();
    assert_eq!(headers, [None, Some(trace.to_owned())], "one traced send, one not");
}
