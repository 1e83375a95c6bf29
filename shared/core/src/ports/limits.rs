//! Per-key execution limits: each key's [`LimitState`] (holders, recent
//! starts, waiters), changed only by a read and a write that no other change
//! came between. The decisions over it are [`crate::limits`]'.

use async_trait::async_trait;

use super::StoreError;
use crate::limits::LimitState;

/// How long after its last entry lapsed a key's stored state is kept (it is
/// removed by the table's TTL then).
pub const LIMIT_STATE_KEPT_MS: i64 = 86_400_000;

/// A change to one key's state: the new state from the stored one.
pub type LimitChange<'a> = &'a (dyn Fn(&LimitState) -> LimitState + Send + Sync);

/// The stored state of every limit key.
#[async_trait]
pub trait LimitSlots: Send + Sync {
    /// The state stored under `key` (empty when none).
    async fn limit_state(&self, key: &str) -> Result<LimitState, StoreError>;

    /// Stores `change(stored)` under `key` unless another change was stored
    /// since `stored` was read (then it reads and tries again, a few times):
    /// exact under concurrent changes. Returns the `stored` state the
    /// winning change was made from, so the caller can tell what its change
    /// decided. A change that leaves the state as it was writes nothing.
    async fn change_limit(&self, key: &str, change: LimitChange<'_>) -> Result<LimitState, StoreError>;
}
