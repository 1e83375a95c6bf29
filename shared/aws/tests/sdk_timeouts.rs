//! Every SDK client is built with time limits: a request to an endpoint that
//! accepts the connection and never answers fails, instead of hanging its
//! caller (the worker's heartbeat above all). Runs against a local socket
//! that stays silent; no emulator needed.

use longrun_core::ports::JobLifecycle;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use longrun_aws::{AwsClients, DynamoJobStore, S3ObjectStore, SdkTimeouts, SqsJobQueue};
use longrun_core::ports::{JobMessage, JobQueue, ObjectStore, QueueError, StoreError};
use longrun_core::JobId;
use tokio::net::TcpListener;

/// An endpoint that accepts connections, reads what is sent and never answers.
async fn silent_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{address}")
}

fn short() -> SdkTimeouts {
    SdkTimeouts {
        connect: Duration::from_millis(500),
        attempt: Duration::from_millis(300),
        operation: Duration::from_secs(1),
        object_attempt: Duration::from_millis(300),
        object_operation: Duration::from_secs(1),
    }
}

async fn clients(endpoint: &str) -> AwsClients {
    let shared = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .http_client(longrun_aws::http::https_client(
            longrun_aws::http::SdkTrustRoots::Amazon,
        ))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            aws_sdk_dynamodb::config::Credentials::for_tests(),
        ))
        .build();
    AwsClients::build(&shared, None, short())
}

/// Fails the test if `call` has not returned within 20 s (far above the
/// 1 s operation limit): a liveness guard, not a timing assertion.
async fn returns<T>(what: &str, call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung on a silent endpoint"))
}

#[tokio::test]
async fn calls_to_an_endpoint_that_never_answers_fail_instead_of_hanging() {
    let endpoint = silent_endpoint().await;
    let clients = clients(&endpoint).await;

    let store = DynamoJobStore::new(clients.dynamodb.clone(), "jobs", 3600);
    let read = returns("DynamoDB GetItem", store.get(&JobId::random())).await;
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");

    let queue = SqsJobQueue::new(
        clients.sqs.clone(),
        [("fast".to_owned(), format!("{endpoint}/000000000000/fast"))]
            .into_iter()
            .collect(),
    );
    let message = JobMessage {
        job_id: JobId::random(),
        enqueued_at: 0,
        generation: 0,
        limit: None,
    };
    let sent = returns("SQS SendMessage", queue.enqueue("fast", &message, 0)).await;
    assert!(matches!(sent, Err(QueueError::Unavailable(_))), "{sent:?}");

    let objects = S3ObjectStore::new(clients.s3.clone(), "bucket");
    let opened = returns("S3 GetObject", objects.open("inputs/x")).await;
    assert!(opened.is_err());
}
