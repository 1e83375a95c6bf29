//! [`MemoryJobStore`]'s schedules: a map of records, written under one lock
//! with the same version and cap rules as the DynamoDB store's.

use std::collections::{HashMap, VecDeque};

use async_trait::async_trait;

use super::MemoryJobStore;
use crate::list_cursor;
use crate::ports::{ScheduleCreate, SchedulePage, ScheduleStore, StoreError};
use crate::schedule::{Schedule, TICK_LOOKAHEAD_MS};

/// A change made to a schedule by "someone else" just before a write.
type Race = Box<dyn FnOnce(&mut Schedule) + Send>;

/// The schedules by id, and the races the next writes lose.
#[derive(Default)]
pub(super) struct Schedules {
    by_id: HashMap<String, Schedule>,
    races: VecDeque<Race>,
}

impl MemoryJobStore {
    /// Makes the next `replace_schedule` find the schedule already changed
    /// by `change` (and its version moved on), as when another writer (the
    /// scheduler pass, its owner) wrote it between the caller's read and
    /// its write. Several calls queue several races, one per write.
    pub fn race_next_schedule_write(&self, change: impl FnOnce(&mut Schedule) + Send + 'static) {
        self.schedules.lock().unwrap().races.push_back(Box::new(change));
    }
}

#[async_trait]
impl ScheduleStore for MemoryJobStore {
    async fn create_schedule(&self, schedule: &Schedule, cap: u32) -> Result<ScheduleCreate, StoreError> {
        drop(self.jobs()?);
        let mut all = self.schedules.lock().unwrap();
        let owned = all.by_id.values().filter(|s| s.owner == schedule.owner).count();
        if owned >= cap as usize {
            return Ok(ScheduleCreate::CapReached);
        }
        let mut stored = schedule.clone();
        stored.version = 1;
        all.by_id.insert(stored.id.clone(), stored);
        Ok(ScheduleCreate::Created)
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError> {
        drop(self.jobs()?);
        Ok(self.schedules.lock().unwrap().by_id.get(id).cloned())
    }

    async fn replace_schedule(&self, schedule: &Schedule, expected_version: u64) -> Result<bool, StoreError> {
        drop(self.jobs()?);
        let mut all = self.schedules.lock().unwrap();
        if let Some(race) = all.races.pop_front() {
            if let Some(stored) = all.by_id.get_mut(&schedule.id) {
                race(stored);
                stored.version += 1;
            }
        }
        match all.by_id.get_mut(&schedule.id) {
            Some(stored) if stored.version == expected_version && stored.owner == schedule.owner => {
                *stored = schedule.clone();
                stored.version = expected_version + 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_schedule(&self, owner: &str, id: &str) -> Result<bool, StoreError> {
        drop(self.jobs()?);
        let mut all = self.schedules.lock().unwrap();
        if all.by_id.get(id).is_some_and(|s| s.owner == owner) {
            all.by_id.remove(id);
            return Ok(true);
        }
        Ok(false)
    }

    async fn list_schedules(
        &self,
        owner: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<SchedulePage, StoreError> {
        drop(self.jobs()?);
        let after = cursor.map(|c| list_cursor::decode_schedule(c, owner)).transpose()?;
        let mut owned: Vec<Schedule> = self
            .schedules
            .lock()
            .unwrap()
            .by_id
            .values()
            .filter(|s| s.owner == owner)
            .filter(|s| after.as_ref().is_none_or(|(at, id)| (s.created_at, &s.id) > (*at, id)))
            .cloned()
            .collect();
        owned.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let more = owned.len() > limit;
        owned.truncate(limit);
        let next_cursor = more
            .then(|| owned.last().map(|s| list_cursor::encode(s.created_at, &s.id, owner)))
            .flatten();
        Ok(SchedulePage {
            schedules: owned,
            next_cursor,
        })
    }

    async fn due_schedules(&self, now_ms: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        drop(self.jobs()?);
        let mut due: Vec<(i64, String)> = self
            .schedules
            .lock()
            .unwrap()
            .by_id
            .values()
            .filter_map(|s| {
                s.due_at(TICK_LOOKAHEAD_MS)
                    .filter(|at| *at <= now_ms)
                    .map(|at| (at, s.id.clone()))
            })
            .collect();
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, id)| id).collect())
    }
}
