//! How many event streams an owner may hold open at once, in all and under
//! one ticket. Each open stream holds an events function invocation for up
//! to `STREAM_MAX_SECONDS`, out of the function's own concurrency
//! (`EventsMaxConcurrency`): the caps keep one caller from taking all of it.
//!
//! The store keeps each owner's open streams with the time each one ends at
//! the latest; a stream that closes gives its place back, and one whose
//! function died is no longer counted once that time passed. [`admit`] is
//! the decision, over what the store read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One open stream of an owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenStream {
    /// The ticket it was opened with (a prefix of the ticket's hash).
    pub ticket: String,
    /// When it ends at the latest (its time cap), epoch milliseconds.
    pub expires_at: i64,
}

/// An owner's open streams by stream id.
pub type OpenStreams = BTreeMap<String, OpenStream>;

/// The caps: open streams per owner and per ticket (0: no cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// `MAX_STREAMS_PER_OWNER`.
    pub per_owner: u32,
    /// `MAX_STREAMS_PER_TICKET`.
    pub per_ticket: u32,
}

/// What opening one more stream comes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamAdmission {
    /// It may open: the open streams to store (expired ones dropped, this one added).
    Admitted(OpenStreams),
    /// The owner has `open` streams open, its cap.
    OwnerFull {
        /// Streams open now.
        open: u32,
    },
    /// The ticket has `open` streams open, its cap.
    TicketFull {
        /// Streams open now under the ticket.
        open: u32,
    },
}

/// The part of a ticket's hash a stream is counted under.
pub fn ticket_tag(token_hash: &str) -> String {
    token_hash.chars().take(16).collect()
}

/// Whether stream `id` (ending by `stream.expires_at`) may open at `now_ms`
/// beside `current`, under `limits`. A stream id already open is admitted
/// again (a retried open).
pub fn admit(
    current: &OpenStreams,
    id: &str,
    stream: &OpenStream,
    now_ms: i64,
    limits: StreamLimits,
) -> StreamAdmission {
    let mut live: OpenStreams = current
        .iter()
        .filter(|(other, s)| s.expires_at > now_ms && other.as_str() != id)
        .map(|(other, s)| (other.clone(), s.clone()))
        .collect();
    let owner_open = live.len() as u32;
    if limits.per_owner > 0 && owner_open >= limits.per_owner {
        return StreamAdmission::OwnerFull { open: owner_open };
    }
    let ticket_open = live.values().filter(|s| s.ticket == stream.ticket).count() as u32;
    if limits.per_ticket > 0 && ticket_open >= limits.per_ticket {
        return StreamAdmission::TicketFull { open: ticket_open };
    }
    live.insert(id.to_owned(), stream.clone());
    StreamAdmission::Admitted(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;
    const LIMITS: StreamLimits = StreamLimits {
        per_owner: 3,
        per_ticket: 2,
    };

    fn open(entries: &[(&str, &str, i64)]) -> OpenStreams {
        entries
            .iter()
            .map(|(id, ticket, expires_at)| {
                (
                    (*id).to_owned(),
                    OpenStream {
                        ticket: (*ticket).to_owned(),
                        expires_at: *expires_at,
                    },
                )
            })
            .collect()
    }

    fn new_stream(ticket: &str) -> OpenStream {
        OpenStream {
            ticket: ticket.into(),
            expires_at: NOW + 300_000,
        }
    }

    #[test]
    fn admits_within_both_caps_and_counts_only_live_streams() {
        let later = NOW + 1;
        // (open streams, the new stream's ticket, what comes of it)
        let table: Vec<(OpenStreams, &str, Result<usize, StreamAdmission>)> = vec![
            (open(&[]), "a", Ok(1)),
            (open(&[("s1", "a", later)]), "a", Ok(2)),
            (
                open(&[("s1", "a", later), ("s2", "a", later)]),
                "a",
                Err(StreamAdmission::TicketFull { open: 2 }),
            ),
            (open(&[("s1", "a", later), ("s2", "a", later)]), "b", Ok(3)),
            (
                open(&[("s1", "a", later), ("s2", "a", later), ("s3", "b", later)]),
                "c",
                Err(StreamAdmission::OwnerFull { open: 3 }),
            ),
            // Streams whose time is over (their function died) are not counted, and dropped.
            (
                open(&[("s1", "a", NOW), ("s2", "a", NOW - 5), ("s3", "b", later)]),
                "a",
                Ok(2),
            ),
        ];
        for (i, (current, ticket, wanted)) in table.into_iter().enumerate() {
            let got = admit(&current, "new", &new_stream(ticket), NOW, LIMITS);
            match (got, wanted) {
                (StreamAdmission::Admitted(stored), Ok(len)) => {
                    assert_eq!(stored.len(), len, "case {i}: {stored:?}");
                    assert!(stored.contains_key("new"), "case {i}");
                }
                (got, Err(refused)) => assert_eq!(got, refused, "case {i}"),
                (got, wanted) => panic!("case {i}: {got:?}, wanted {wanted:?}"),
            }
        }
    }

    #[test]
    fn a_retried_open_is_admitted_again_and_no_cap_means_none() {
        let full = open(&[("s1", "a", NOW + 1), ("s2", "a", NOW + 1)]);
        assert!(matches!(
            admit(&full, "s2", &new_stream("a"), NOW, LIMITS),
            StreamAdmission::Admitted(_)
        ));
        let none = StreamLimits {
            per_owner: 0,
            per_ticket: 0,
        };
        let many: OpenStreams = (0..100).map(|i| (format!("s{i}"), new_stream("a"))).collect();
        assert!(
            matches!(admit(&many, "new", &new_stream("a"), NOW, none), StreamAdmission::Admitted(m) if m.len() == 101)
        );
        assert_eq!(ticket_tag("0123456789abcdef0123"), "0123456789abcdef");
    }
}
