//! Contract case of the open-stream caps.

use crate::*;

pub(crate) async fn open_streams_are_capped_per_owner_and_ticket_exactly_and_given_back(store: &dyn JobStore) {
    use longrun_core::streams::{OpenStream, StreamAdmission, StreamLimits};
    let owner = format!("streams-{}", uuid::Uuid::new_v4());
    let now = now_ms();
    let limits = StreamLimits {
        per_owner: 3,
        per_ticket: 2,
    };
    let stream = |ticket: &str| OpenStream {
        ticket: ticket.into(),
        expires_at: now + 300_000,
    };
    let open = |id: &'static str, ticket: &'static str, at: i64| {
        let owner = owner.clone();
        async move {
            store
                .open_stream(&owner, id, &stream(ticket), at, limits)
                .await
                .unwrap()
        }
    };
    assert!(matches!(open("a1", "A", now).await, StreamAdmission::Admitted(_)));
    assert!(matches!(open("a2", "A", now).await, StreamAdmission::Admitted(_)));
    assert!(
        matches!(open("a2", "A", now).await, StreamAdmission::Admitted(_)),
        "a retried open"
    );
    assert_eq!(open("a3", "A", now).await, StreamAdmission::TicketFull { open: 2 });
    assert!(matches!(open("b1", "B", now).await, StreamAdmission::Admitted(_)));
    assert_eq!(open("c1", "C", now).await, StreamAdmission::OwnerFull { open: 3 });
    // A closed stream gives its place back; closing twice, or one never open, is nothing.
    store.close_stream(&owner, "a1").await.unwrap();
    store.close_stream(&owner, "a1").await.unwrap();
    store.close_stream(&owner, "never").await.unwrap();
    assert!(matches!(open("c1", "C", now).await, StreamAdmission::Admitted(_)));
    assert_eq!(open("c2", "C", now).await, StreamAdmission::OwnerFull { open: 3 });
    // Streams whose time is over (their function died) count no more.
    match open("later", "D", now + 300_001).await {
        StreamAdmission::Admitted(open) => assert_eq!(open.keys().collect::<Vec<_>>(), ["later"]),
        other => panic!("{other:?}"),
    }
    // Another owner is not counted with this one.
    let other = format!("{owner}-other");
    let admitted = store.open_stream(&other, "x", &stream("A"), now, limits).await.unwrap();
    assert!(matches!(admitted, StreamAdmission::Admitted(_)));

    // Concurrent opens: exactly the cap.
    let busy = format!("{owner}-busy");
    let try_open = |id: &'static str| {
        let busy = busy.clone();
        async move { store.open_stream(&busy, id, &stream(id), now, limits).await.unwrap() }
    };
    let outcomes = tokio::join!(
        try_open("s1"),
        try_open("s2"),
        try_open("s3"),
        try_open("s4"),
        try_open("s5"),
        try_open("s6")
    );
    let outcomes = [outcomes.0, outcomes.1, outcomes.2, outcomes.3, outcomes.4, outcomes.5];
    let admitted = outcomes
        .iter()
        .filter(|o| matches!(o, StreamAdmission::Admitted(_)))
        .count();
    assert_eq!(admitted, 3, "{outcomes:?}");
}
