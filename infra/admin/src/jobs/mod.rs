//! `jobs`: how many jobs are in each status — a paginated Scan of the whole
//! table (reading only `status` back, and only job items: those with a
//! `job_type`; an owner's quota item and stream tickets have none), or with
//! an owner a Query of the `by-owner` index — and with a status the newest
//! of the jobs in it. The reading is [`read`]; the dashboard reads a bounded
//! part at a time and pages on with a [`Cursor`].

mod read;

use std::collections::BTreeMap;

pub use read::{tally, Cursor, Filter};

use longrun_aws::{LEGACY_OWNER_INDEX, OWNER_INDEX};
use longrun_core::time::rfc3339;
use longrun_core::JobStatus;
use serde::Serialize;

use crate::format::table;

/// One job, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRow {
    pub id: String,
    pub owner: String,
    pub job_type: String,
    pub status: String,
    pub queue: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Counts by status, and the newest jobs of the status asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Tally {
    /// Every status, 0 when none is in it (and any status the code does
    /// not know, should the table hold one).
    pub counts: BTreeMap<String, u64>,
    pub total: u64,
    /// The status listed, if one was asked for.
    pub status: Option<JobStatus>,
    /// How many jobs are in it.
    pub matching: u64,
    /// The newest `limit` of them, newest first (by `updated_at`).
    pub newest: Vec<JobRow>,
    pub limit: usize,
    /// Where the read stopped, its budget spent, before the end: the rest
    /// is read from here. `None`: read to the end.
    pub next: Option<Cursor>,
}

impl Tally {
    pub fn new(status: Option<JobStatus>, limit: usize) -> Self {
        Tally {
            counts: JobStatus::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect(),
            total: 0,
            status,
            matching: 0,
            newest: Vec::new(),
            limit,
            next: None,
        }
    }

    /// Counts a job whose status is `status`; `row` (when listing) may be kept.
    pub fn add(&mut self, status: &str, row: Option<JobRow>) {
        *self.counts.entry(status.to_owned()).or_insert(0) += 1;
        self.total += 1;
        if self.status.map(JobStatus::as_str) != Some(status) {
            return;
        }
        self.matching += 1;
        if let Some(row) = row {
            self.newest.push(row);
            // Keep memory bounded on a large table: cut back now and then.
            if self.newest.len() >= self.limit.saturating_mul(2).max(64) {
                self.settle();
            }
        }
    }

    /// Sorts the kept jobs newest first and keeps `limit` of them.
    pub fn settle(&mut self) {
        self.newest
            .sort_by(|a, b| (b.updated_at, b.created_at, &b.id).cmp(&(a.updated_at, a.created_at, &a.id)));
        self.newest.truncate(self.limit);
    }
}

#[derive(Serialize)]
struct JobJson<'a> {
    id: &'a str,
    owner: &'a str,
    #[serde(rename = "type")]
    job_type: &'a str,
    status: &'a str,
    queue: &'a str,
    created_at: String,
    updated_at: String,
}

/// The `jobs` report, as JSON or text.
pub fn render(tally: &Tally, source: &str, owner: Option<&str>, table_name: &str, now_ms: i64, json: bool) -> String {
    let read = match owner {
        Some(_) => format!("queries of the {OWNER_INDEX} and {LEGACY_OWNER_INDEX} indexes of {table_name}"),
        None => format!("scan of {table_name} (job items only)"),
    };
    if json {
        let jobs: Option<Vec<JobJson>> = tally.status.map(|_| {
            tally
                .newest
                .iter()
                .map(|j| JobJson {
                    id: &j.id,
                    owner: &j.owner,
                    job_type: &j.job_type,
                    status: &j.status,
                    queue: &j.queue,
                    created_at: rfc3339(j.created_at),
                    updated_at: rfc3339(j.updated_at),
                })
                .collect()
        });
        let value = serde_json::json!({
            "source": source,
            "generated_at": rfc3339(now_ms),
            "read": read,
            "owner": owner,
            "status": tally.status.map(JobStatus::as_str),
            "counts": tally.counts,
            "total": tally.total,
            "matching": tally.status.map(|_| tally.matching),
            "limit": tally.limit,
            "jobs": jobs,
        });
        return serde_json::to_string_pretty(&value).unwrap_or_default();
    }
    let mut out = format!("{source}; {read}");
    if let Some(owner) = owner {
        out.push_str(&format!("; owner {owner}"));
    }
    out.push('\n');
    // The state machine's order first, then anything unexpected.
    let mut rows: Vec<Vec<String>> = JobStatus::ALL
        .iter()
        .map(|s| {
            vec![
                s.as_str().to_owned(),
                tally.counts.get(s.as_str()).copied().unwrap_or(0).to_string(),
            ]
        })
        .collect();
    rows.extend(
        tally
            .counts
            .iter()
            .filter(|(s, _)| JobStatus::parse(s).is_none())
            .map(|(s, n)| vec![s.clone(), n.to_string()]),
    );
    rows.push(vec!["total".to_owned(), tally.total.to_string()]);
    out.push_str(&table(&["STATUS", "JOBS"], &rows, &[1]));
    if let Some(status) = tally.status {
        out.push_str(&format!(
            "\nnewest {} of {} {status} (by updated_at):\n",
            tally.newest.len(),
            tally.matching
        ));
        let rows: Vec<Vec<String>> = tally
            .newest
            .iter()
            .map(|j| {
                vec![
                    j.id.clone(),
                    j.owner.clone(),
                    j.job_type.clone(),
                    j.queue.clone(),
                    j.status.clone(),
                    rfc3339(j.updated_at),
                ]
            })
            .collect();
        out.push_str(&table(
            &["ID", "OWNER", "TYPE", "QUEUE", "STATUS", "UPDATED"],
            &rows,
            &[],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, status: &str, updated_at: i64) -> JobRow {
        JobRow {
            id: id.into(),
            owner: "o".into(),
            job_type: "sleep".into(),
            status: status.into(),
            queue: "fast".into(),
            created_at: 0,
            updated_at,
        }
    }

    #[test]
    fn a_tally_counts_every_status_and_keeps_the_newest_of_one() {
        let mut tally = Tally::new(Some(JobStatus::Queued), 2);
        for (i, status) in ["QUEUED", "SUCCEEDED", "QUEUED", "QUEUED", "FAILED"].iter().enumerate() {
            tally.add(status, Some(row(&format!("j{i}"), status, i as i64)));
        }
        tally.settle();
        assert_eq!(tally.total, 5);
        assert_eq!(tally.counts["QUEUED"], 3);
        assert_eq!(tally.counts["RUNNING"], 0, "every status is counted, even at 0");
        assert_eq!(tally.counts["DEAD_LETTERED"], 0);
        assert_eq!(tally.matching, 3);
        let ids: Vec<&str> = tally.newest.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, ["j3", "j2"], "newest first, limit 2");
    }

    #[test]
    fn the_kept_jobs_stay_bounded_on_a_large_table() {
        let mut tally = Tally::new(Some(JobStatus::Succeeded), 3);
        for i in 0..10_000 {
            tally.add("SUCCEEDED", Some(row(&format!("j{i:05}"), "SUCCEEDED", i)));
            assert!(tally.newest.len() <= 64);
        }
        tally.settle();
        let ids: Vec<&str> = tally.newest.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, ["j09999", "j09998", "j09997"]);
        assert_eq!(tally.matching, 10_000);
    }

    #[test]
    fn counts_render_as_text_and_stable_json() {
        let mut tally = Tally::new(None, 20);
        tally.add("QUEUED", None);
        tally.add("WEIRD", None);
        let text = render(&tally, "src", None, "t", 0, false);
        assert!(text.contains("scan of t (job items only)"), "{text}");
        assert!(text.lines().any(|l| l == "QUEUED            1"), "{text}");
        assert!(text.lines().any(|l| l == "WEIRD             1"), "{text}");
        assert!(text.lines().any(|l| l == "total             2"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&render(&tally, "src", Some("o"), "t", 0, true)).unwrap();
        assert_eq!(json["counts"]["QUEUED"], 1);
        assert_eq!(json["counts"]["CANCELLED"], 0);
        assert_eq!(json["total"], 2);
        assert_eq!(json["owner"], "o");
        assert!(json["jobs"].is_null() && json["status"].is_null());
    }
}
