//! [`MemoryJobStore`]'s owner items: quota slots, webhook secrets and
//! stream tickets, beside the job records.

use async_trait::async_trait;

use super::MemoryJobStore;
use crate::ports::{OwnerData, QuotaSlots, RateWindow, SlotOutcome, StoreError, StreamTicket};
use crate::record::JobId;
use crate::streams::{self, OpenStream, StreamAdmission, StreamLimits};
use crate::time::now_ms;
use crate::webhook::WebhookSecrets;

impl MemoryJobStore {
    /// Makes `owner`'s reservation of `id` look made at `reserved_at_ms`
    /// (test set-up: a reservation left behind long ago).
    pub fn backdate_reservation(&self, owner: &str, id: &JobId, reserved_at_ms: i64) {
        if let Some(at) = self
            .slots
            .lock()
            .unwrap()
            .get_mut(owner)
            .and_then(|set| set.get_mut(id))
        {
            *at = reserved_at_ms;
        }
    }
}

#[async_trait]
impl QuotaSlots for MemoryJobStore {
    async fn reserve_slot(&self, owner: &str, id: &JobId, limit: u32) -> Result<SlotOutcome, StoreError> {
        let _reachable = self.jobs()?;
        let mut slots = self.slots.lock().unwrap();
        let set = slots.entry(owner.to_owned()).or_default();
        if set.contains_key(id) {
            return Ok(SlotOutcome::Reserved { newly: false });
        }
        if set.len() >= limit as usize {
            return Ok(SlotOutcome::Full {
                active: set.keys().cloned().collect(),
                // As the DynamoDB store: kept for ids without a time of their own.
                reserved_at: set
                    .iter()
                    .filter(|(id, _)| id.created_ms().is_none())
                    .map(|(id, at)| (id.clone(), *at))
                    .collect(),
            });
        }
        set.insert(id.clone(), now_ms());
        Ok(SlotOutcome::Reserved { newly: true })
    }

    async fn release_slot(&self, owner: &str, id: &JobId) -> Result<(), StoreError> {
        let _reachable = self.jobs()?;
        if let Some(set) = self.slots.lock().unwrap().get_mut(owner) {
            set.remove(id);
        }
        Ok(())
    }

    async fn active_slots(&self, owner: &str) -> Result<Vec<JobId>, StoreError> {
        let _reachable = self.jobs()?;
        Ok(self
            .slots
            .lock()
            .unwrap()
            .get(owner)
            .map(|set| set.keys().cloned().collect())
            .unwrap_or_default())
    }
}

#[async_trait]
impl OwnerData for MemoryJobStore {
    async fn webhook_secrets(&self, owner: &str) -> Result<Option<WebhookSecrets>, StoreError> {
        drop(self.jobs()?);
        Ok(self.secrets.lock().unwrap().get(owner).cloned())
    }

    async fn replace_webhook_secrets(
        &self,
        owner: &str,
        expected_created_at: Option<i64>,
        new: &WebhookSecrets,
    ) -> Result<bool, StoreError> {
        drop(self.jobs()?);
        let mut secrets = self.secrets.lock().unwrap();
        if secrets.get(owner).map(|s| s.created_at) != expected_created_at {
            return Ok(false);
        }
        secrets.insert(owner.to_owned(), new.clone());
        Ok(true)
    }

    async fn put_stream_ticket(&self, ticket: &StreamTicket) -> Result<(), StoreError> {
        drop(self.jobs()?);
        self.tickets
            .lock()
            .unwrap()
            .insert(ticket.token_hash.clone(), ticket.clone());
        Ok(())
    }

    async fn count_in_window(&self, owner: &str, counter: &str, window: &RateWindow) -> Result<bool, StoreError> {
        drop(self.jobs()?);
        let mut counts = self.window_counts.lock().unwrap();
        let count = counts
            .entry((owner.to_owned(), counter.to_owned(), window.start_ms))
            .or_default();
        if *count >= window.limit {
            return Ok(false);
        }
        *count += 1;
        Ok(true)
    }

    async fn stream_ticket(&self, token_hash: &str, now_ms: i64) -> Result<Option<StreamTicket>, StoreError> {
        drop(self.jobs()?);
        let tickets = self.tickets.lock().unwrap();
        Ok(tickets.get(token_hash).filter(|t| t.expires_at >= now_ms).cloned())
    }

    async fn open_stream(
        &self,
        owner: &str,
        id: &str,
        stream: &OpenStream,
        now_ms: i64,
        limits: StreamLimits,
    ) -> Result<StreamAdmission, StoreError> {
        drop(self.jobs()?);
        let mut all = self.streams.lock().unwrap();
        let current = all.entry(owner.to_owned()).or_default();
        let admission = streams::admit(current, id, stream, now_ms, limits);
        if let StreamAdmission::Admitted(open) = &admission {
            *current = open.clone();
        }
        Ok(admission)
    }

    async fn close_stream(&self, owner: &str, id: &str) -> Result<(), StoreError> {
        drop(self.jobs()?);
        if let Some(open) = self.streams.lock().unwrap().get_mut(owner) {
            open.remove(id);
        }
        Ok(())
    }
}
