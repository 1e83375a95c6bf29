//! The `/schedules` calls: create, list, get, change (pause, resume) and
//! delete a recurring schedule.

use longrun_types::schedule::{ScheduleList, SchedulePatch, ScheduleRequest, ScheduleView};
use reqwest::Method;

use crate::{Client, ClientError};

impl Client {
    /// `POST /schedules`. Not repeated after a connection failure: one that
    /// got through made the schedule, and a second would make another.
    pub async fn create_schedule(&self, request: &ScheduleRequest) -> Result<ScheduleView, ClientError> {
        self.json(false, || self.request(Method::POST, "/schedules").json(request))
            .await
    }

    /// `GET /schedules`: one page of the caller's schedules, oldest first.
    pub async fn list_schedules(&self, limit: Option<u32>, cursor: Option<&str>) -> Result<ScheduleList, ClientError> {
        let mut query = Vec::new();
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        self.json(true, || self.request(Method::GET, "/schedules").query(&query))
            .await
    }

    /// `GET /schedules/{id}`, with its recent runs and their jobs' statuses.
    pub async fn get_schedule(&self, id: &str) -> Result<ScheduleView, ClientError> {
        let path = format!("/schedules/{id}");
        self.json(true, || self.request(Method::GET, &path)).await
    }

    /// `PATCH /schedules/{id}`: the fields `patch` gives replace the stored
    /// ones. Repeated after a connection failure (the same change twice is
    /// the change once).
    pub async fn change_schedule(&self, id: &str, patch: &SchedulePatch) -> Result<ScheduleView, ClientError> {
        let path = format!("/schedules/{id}");
        self.json(true, || self.request(Method::PATCH, &path).json(patch)).await
    }

    /// Pauses the schedule: no ticks until [`resume_schedule`](Self::resume_schedule).
    pub async fn pause_schedule(&self, id: &str) -> Result<ScheduleView, ClientError> {
        let patch = SchedulePatch {
            paused: Some(true),
            ..SchedulePatch::default()
        };
        self.change_schedule(id, &patch).await
    }

    /// Resumes the schedule from now (ticks missed while paused are not made up).
    pub async fn resume_schedule(&self, id: &str) -> Result<ScheduleView, ClientError> {
        let patch = SchedulePatch {
            paused: Some(false),
            ..SchedulePatch::default()
        };
        self.change_schedule(id, &patch).await
    }

    /// `DELETE /schedules/{id}`. Not repeated after a connection failure (a
    /// delete that got through answers `404` the second time).
    pub async fn delete_schedule(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/schedules/{id}");
        self.send(false, || self.request(Method::DELETE, &path)).await?;
        Ok(())
    }
}
