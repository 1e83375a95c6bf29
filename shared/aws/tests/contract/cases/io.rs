//! Contract cases of the object store and the queues.

use crate::*;

pub(crate) async fn objects_stream_back_byte_for_byte(objects: &dyn ObjectStore) {
    let key = format!("results/contract-{}/blob.bin", uuid::Uuid::new_v4());
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    objects
        .put(&key, Bytes::from(body.clone()), "application/octet-stream")
        .await
        .unwrap();
    let mut reader = objects.open(&key).await.unwrap();
    assert_eq!(reader.size, Some(body.len() as u64));
    let mut read = Vec::new();
    reader.body.read_to_end(&mut read).await.unwrap();
    assert_eq!(read, body);
    // From an offset: the rest, byte for byte; at or past the end, nothing.
    for offset in [1u64, 1_234_567, 1_999_999, 2_000_000, 2_000_001] {
        let mut reader = objects.open_from(&key, offset, None).await.unwrap();
        let rest = &body[(offset as usize).min(body.len())..];
        assert_eq!(reader.size, Some(rest.len() as u64), "from {offset}");
        let mut read = Vec::new();
        reader.body.read_to_end(&mut read).await.unwrap();
        assert!(
            read == rest,
            "from {offset}: {} bytes read, {} expected",
            read.len(),
            rest.len()
        );
    }
    assert!(matches!(
        objects.open_from("inputs/no-such-object", 5, None).await,
        Err(ObjectError::NotFound(_))
    ));
    // Only the version read: the same one reads on, a replaced one is Changed.
    let etag = objects
        .open(&key)
        .await
        .unwrap()
        .etag
        .expect("a read names its version");
    let mut reader = objects.open_from(&key, 1_000, Some(&etag)).await.unwrap();
    let mut read = Vec::new();
    reader.body.read_to_end(&mut read).await.unwrap();
    assert!(read == body[1_000..], "the same version reads on");
    objects
        .put(
            &key,
            Bytes::from_static(b"another object under the same key"),
            "application/octet-stream",
        )
        .await
        .unwrap();
    assert!(matches!(
        objects.open_from(&key, 1_000, Some(&etag)).await,
        Err(ObjectError::Changed(_))
    ));
    assert!(matches!(
        objects.open_from(&key, 0, Some(&etag)).await,
        Err(ObjectError::Changed(_))
    ));
    let url = objects.presign_get(&key, Duration::from_secs(60)).await.unwrap();
    assert!(url.contains(&key), "{url}");
    assert!(matches!(
        objects.open("inputs/no-such-object").await,
        Err(ObjectError::NotFound(_))
    ));
}

pub(crate) async fn depth_counts_waiting_and_delayed_messages(queue: &dyn JobQueue) {
    assert_eq!(queue.depth("fast").await.unwrap(), 0);
    let message = |n: i64| JobMessage {
        job_id: JobId::random(),
        enqueued_at: n,
        generation: 0,
        limit: None,
    };
    queue.enqueue("fast", &message(1), 0).await.unwrap();
    queue.enqueue("fast", &message(2), 0).await.unwrap();
    queue.enqueue("fast", &message(3), 60).await.unwrap();
    assert_eq!(queue.depth("fast").await.unwrap(), 3, "two waiting and one delayed");
    assert_eq!(
        queue.message_counts("fast").await.unwrap(),
        MessageCounts {
            waiting: 3,
            in_flight: 0
        },
        "nothing received yet"
    );
    assert!(matches!(
        queue.depth("no-such-queue").await,
        Err(QueueError::UnknownQueue(_))
    ));
    assert!(matches!(
        queue.message_counts("no-such-queue").await,
        Err(QueueError::UnknownQueue(_))
    ));
}

pub(crate) async fn unknown_queues_are_refused(queue: &dyn JobQueue) {
    let message = JobMessage {
        job_id: JobId::random(),
        enqueued_at: now_ms(),
        generation: 0,
        limit: None,
    };
    assert!(matches!(
        queue.enqueue("no-such-queue", &message, 0).await,
        Err(QueueError::UnknownQueue(_))
    ));
    assert!(matches!(
        queue.change_visibility("no-such-queue", "r", 1).await,
        Err(QueueError::UnknownQueue(_))
    ));
    queue.enqueue("fast", &message, 0).await.unwrap();
}
