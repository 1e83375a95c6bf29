//! `longrun-smoke`: a short check of a running stack over its public API
//! only — a deployed one (`make smoke API=https://… TOKEN=…`) or the local
//! runtime — with nothing but a caller's token: no AWS credentials, no
//! resource names.
//!
//! It checks that callers without a valid token are refused, that bad input
//! is a problem and not a job, and runs one real job through the way a
//! caller does with `longrun-client`: upload a CSV, submit a `report` with an
//! `Idempotency-Key` (twice: one job), wait for it, download the summary and
//! compare it with the sums of the rows it uploaded; then lists, cancels an
//! ended job (`409`) and asks for a job that does not exist (`404`). With a
//! second caller's token (`TOKEN_OTHER`), that caller must not see the job.
//!
//! ```text
//! longrun-smoke --api URL --token TOKEN [--other-token TOKEN] [--names]
//! ```
//! `--names`: the stack takes a bare name as the caller (a local runtime
//! without `--jwks`), so the malformed-token check is skipped.
//! (or `LONGRUN_API_URL`, `LONGRUN_TOKEN`, `LONGRUN_OTHER_TOKEN`). Prints one
//! line per check; exits 1 if any failed.

use std::time::{Duration, Instant};

use longrun_client::{api::SubmitRequest, Client, ClientError};
use serde_json::{json, Value};

/// How long the report job may take end to end.
const JOB_LIMIT: Duration = Duration::from_secs(180);

struct Smoke {
    api: String,
    http: reqwest::Client,
    failed: Vec<String>,
}

impl Smoke {
    fn check(&mut self, name: &str, outcome: Result<String, String>) {
        match outcome {
            Ok(detail) => println!("ok    {name}: {detail}"),
            Err(why) => {
                println!("FAIL  {name}: {why}");
                self.failed.push(name.to_owned());
            }
        }
    }

    async fn status_of(&self, request: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
        let response = request.send().await.map_err(|e| format!("no answer: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }
}

fn expect_status(answer: Result<(u16, Value), String>, wanted: u16) -> Result<String, String> {
    let (status, body) = answer?;
    if status == wanted {
        Ok(format!("{status}"))
    } else {
        Err(format!("answered {status}, wanted {wanted}: {body}"))
    }
}

fn argument(args: &[String], flag: &str, env: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var(env).ok())
        .filter(|v| !v.is_empty())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(api), Some(token)) = (
        argument(&args, "--api", "LONGRUN_API_URL"),
        argument(&args, "--token", "LONGRUN_TOKEN"),
    ) else {
        eprintln!("usage: longrun-smoke --api URL --token TOKEN [--other-token TOKEN] [--names]");
        std::process::exit(2);
    };
    let other = argument(&args, "--other-token", "LONGRUN_OTHER_TOKEN");
    let names = args.iter().any(|a| a == "--names");
    let api = api.trim_end_matches('/').to_owned();
    let mut smoke = Smoke {
        api: api.clone(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(40))
            .build()
            .expect("an HTTP client"),
        failed: Vec::new(),
    };
    println!("smoke test of {api}");
    refusals(&mut smoke, &token, names).await;
    match Client::new(&api, &token) {
        Ok(client) => one_real_job(&mut smoke, &client, other.as_deref()).await,
        Err(e) => smoke.check("client", Err(e.to_string())),
    }
    if smoke.failed.is_empty() {
        println!("smoke: every check passed");
    } else {
        println!("smoke: {} failed: {}", smoke.failed.len(), smoke.failed.join(", "));
        std::process::exit(1);
    }
}

/// Callers without a valid token, and bad input, change nothing.
async fn refusals(smoke: &mut Smoke, token: &str, names: bool) {
    let jobs = format!("{}/jobs", smoke.api);
    let answer = smoke.status_of(smoke.http.get(&jobs)).await;
    smoke.check("no token is 401", expect_status(answer, 401));
    if names {
        println!("skip  a malformed token is 401: this stack takes bare names as callers");
    } else {
        let answer = smoke.status_of(smoke.http.get(&jobs).bearer_auth("not.a.token")).await;
        smoke.check("a malformed token is 401", expect_status(answer, 401));
    }
    let bad = smoke
        .http
        .post(&jobs)
        .bearer_auth(token)
        .json(&json!({"type": "report", "input": {"source": {"key": "not-an-upload"}}}));
    let answer = smoke.status_of(bad).await;
    let outcome = match answer {
        Ok((422, body))
            if body["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:longrun:problem:")) =>
        {
            Ok(format!("422 {}", body["type"]))
        }
        other => Err(format!("{other:?}")),
    };
    smoke.check("bad input is a 422 problem", outcome);
}

/// A report over an uploaded CSV, from upload to summary, and what its
/// owner and others may do with it afterwards.
async fn one_real_job(smoke: &mut Smoke, client: &Client, other: Option<&str>) {
    let rows = 1_000u64;
    let csv: String = std::iter::once("region,amount\n".to_owned())
        .chain((0..rows).map(|i| format!("{},{}\n", ["eu", "us", "apac"][(i % 3) as usize], i)))
        .collect();
    let path = std::env::temp_dir().join(format!("longrun-smoke-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(&path, &csv).expect("write the smoke CSV");
    let key = client.upload_file(&path).await;
    let _ = std::fs::remove_file(&path);
    let key = match key {
        Ok(key) => {
            smoke.check("upload", Ok(key.clone()));
            key
        }
        Err(e) => return smoke.check("upload", Err(e.to_string())),
    };
    let request: SubmitRequest = serde_json::from_value(json!({
        "type": "report",
        "input": {"source": {"key": key}, "group_by": ["region"], "values": ["amount"]},
    }))
    .expect("a submit request");
    let idempotency_key = format!("smoke-{}", uuid::Uuid::new_v4());
    let first = client.submit(&request, Some(&idempotency_key)).await;
    let again = client.submit(&request, Some(&idempotency_key)).await;
    let id = match (first, again) {
        (Ok(a), Ok(b)) if a.id == b.id => {
            smoke.check("submit, twice with one Idempotency-Key: one job", Ok(a.id.clone()));
            a.id
        }
        (a, b) => return smoke.check("submit", Err(format!("{a:?} / {b:?}"))),
    };
    let started = Instant::now();
    let done = tokio::time::timeout(JOB_LIMIT, client.wait(&id, |_| {})).await;
    let done = match done {
        Ok(Ok(view)) if view.status == "SUCCEEDED" => {
            smoke.check(
                "the job succeeds",
                Ok(format!("in {:.1} s", started.elapsed().as_secs_f64())),
            );
            view
        }
        Ok(Ok(view)) => {
            return smoke.check(
                "the job succeeds",
                Err(format!("ended {}: {:?}", view.status, view.error)),
            )
        }
        Ok(Err(e)) => return smoke.check("the job succeeds", Err(e.to_string())),
        Err(_) => return smoke.check("the job succeeds", Err(format!("not ended after {JOB_LIMIT:?}"))),
    };
    let dir = std::env::temp_dir().join(format!("longrun-smoke-{id}"));
    let summary = client
        .download_results(&done, &dir)
        .await
        .map_err(|e| e.to_string())
        .and_then(|files| {
            let file = files
                .iter()
                .find(|f| f.ends_with("summary.json"))
                .ok_or("no summary.json")?;
            serde_json::from_slice::<Value>(&std::fs::read(file).map_err(|e| e.to_string())?).map_err(|e| e.to_string())
        });
    let _ = std::fs::remove_dir_all(&dir);
    let expected_total: u64 = (0..rows).sum();
    smoke.check(
        "the summary adds up",
        summary.and_then(|s| {
            let total: f64 = s["groups"]
                .as_array()
                .map(|groups| groups.iter().filter_map(|g| g["stats"]["amount"]["sum"].as_f64()).sum())
                .unwrap_or_default();
            if s["rows"] == rows && total == expected_total as f64 {
                Ok(format!("{rows} rows, sum {total}"))
            } else {
                Err(format!("wanted {rows} rows summing to {expected_total}: {s}"))
            }
        }),
    );
    let listed = client.list(None, Some(50), None).await;
    smoke.check(
        "the job is in the caller's list",
        match listed {
            Ok(page) if page.jobs.iter().any(|j| j.id == id) => {
                Ok(format!("{} jobs on the first page", page.jobs.len()))
            }
            other => Err(format!("{other:?}")),
        },
    );
    let cancel = client.cancel(&id).await;
    smoke.check("cancelling an ended job is 409", problem_status(cancel, 409));
    let missing = client.get(&uuid::Uuid::now_v7().to_string(), 0).await;
    smoke.check("a job that does not exist is 404", problem_status(missing, 404));
    if let Some(other) = other {
        let theirs = match Client::new(&smoke.api, other) {
            Ok(c) => c.get(&id, 0).await,
            Err(e) => Err(e),
        };
        smoke.check("another caller cannot see the job (404)", problem_status(theirs, 404));
    }
}

fn problem_status<T: std::fmt::Debug>(answer: Result<T, ClientError>, wanted: u16) -> Result<String, String> {
    match answer {
        Err(e) if e.status() == Some(wanted) => Ok(format!("{wanted}")),
        other => Err(format!("wanted {wanted}, got {other:?}")),
    }
}
