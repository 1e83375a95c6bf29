//! [`MemoryJobStore`]'s limit keys: each key's state in a map, changed under
//! one lock (so exactly as the DynamoDB store's version check makes it).

use async_trait::async_trait;

use super::MemoryJobStore;
use crate::limits::LimitState;
use crate::ports::{LimitChange, LimitSlots, StoreError};

#[async_trait]
impl LimitSlots for MemoryJobStore {
    async fn limit_state(&self, key: &str) -> Result<LimitState, StoreError> {
        drop(self.jobs()?);
        Ok(self.limits.lock().unwrap().get(key).cloned().unwrap_or_default())
    }

    async fn change_limit(&self, key: &str, change: LimitChange<'_>) -> Result<LimitState, StoreError> {
        drop(self.jobs()?);
        let mut all = self.limits.lock().unwrap();
        let stored = all.get(key).cloned().unwrap_or_default();
        let changed = change(&stored);
        if changed != stored {
            all.insert(key.to_owned(), changed);
        }
        Ok(stored)
    }
}
