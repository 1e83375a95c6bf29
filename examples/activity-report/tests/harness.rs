//! The job type tested as an app's author would: through longrun's public
//! job test harness (`longrun_core::job_types::testing`, feature `test-util`),
//! over in-memory stores, with no emulator.

use activity_report::aggregate::Activity;
use activity_report::{ActivityReport, JOB_TYPE};
use longrun_core::job_types::testing::Harness;
use longrun_core::job_types::JobHandler;
use longrun_core::record::codes;
use serde_json::{json, Value};

fn csv(rows: u32) -> String {
    let mut csv = String::from("id,date,amount\n");
    for i in 0..rows {
        csv.push_str(&format!("{i},{}-{:02}-15,{}.25\n", 2024 + i % 2, 1 + i % 12, i % 100));
    }
    csv
}

async fn report(h: &Harness) -> (Value, Vec<u8>) {
    let results = h.run(&ActivityReport).await.expect("the job succeeds");
    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["activity-2025.pdf", "months.json"]);
    let months = serde_json::from_slice(&h.result("months.json").unwrap()).unwrap();
    (months, h.result("activity-2025.pdf").unwrap().to_vec())
}

#[tokio::test]
async fn a_year_of_activity_becomes_a_pdf_report_and_its_months() {
    let h = Harness::new(json!({})).await;
    let key = h.put_input("activity.csv", csv(2_400)).await;
    let h = h.with_input(json!({"source": {"key": key}, "year": 2025, "title": "Shop"}));
    let (months, pdf) = report(&h).await;
    assert_eq!(months["records"], 2_400);
    assert_eq!(months["other_years"], 1_200);
    let counted: u64 = months["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 1_200);
    assert!(pdf.starts_with(b"%PDF-"));
    assert!(String::from_utf8_lossy(&pdf).contains("(Shop)"));
}

#[tokio::test]
async fn a_run_resuming_from_a_checkpoint_gives_the_same_report_as_one_that_did_not_stop() {
    let whole = Harness::new(json!({})).await;
    let key = whole.put_input("activity.csv", csv(1_000)).await;
    let input = json!({"source": {"key": key}, "year": 2025});
    let whole = whole.with_input(input);
    let (expected, _) = report(&whole).await;

    // What a run that stopped after 300 records saved.
    let mut stopped = Activity::default();
    let text = csv(1_000);
    let columns = activity_report::aggregate::Columns {
        date: "date",
        amount: "amount",
        year: 2025,
    };
    activity_report::aggregate::aggregate(text.as_bytes(), &columns, &mut stopped, |a| a.records < 300).unwrap();
    assert_eq!(stopped.records, 300);

    let resumed = Harness::resuming(json!({}), serde_json::to_value(&stopped).unwrap()).await;
    let key = resumed.put_input("activity.csv", text).await;
    let resumed = resumed.with_input(json!({"source": {"key": key}, "year": 2025}));
    let (months, _) = report(&resumed).await;
    assert_eq!(months, expected);

    // And it did resume rather than start over: from a checkpoint that says
    // every record was read, nothing more is counted.
    let mut read_all: Activity = serde_json::from_value(expected).unwrap();
    read_all.other_years = 7;
    let marked = Harness::resuming(json!({}), serde_json::to_value(&read_all).unwrap()).await;
    let key = marked.put_input("activity.csv", csv(1_000)).await;
    let marked = marked.with_input(json!({"source": {"key": key}, "year": 2025}));
    let (months, _) = report(&marked).await;
    assert_eq!(months["other_years"], 7, "{months}");
}

#[tokio::test]
async fn a_cancel_stops_the_run_and_writes_no_report() {
    let h = Harness::new(json!({})).await;
    let key = h.put_input("activity.csv", csv(50)).await;
    let h = h.with_input(json!({"source": {"key": key}, "year": 2025}));
    h.signal.cancel();
    let err = h.run(&ActivityReport).await.unwrap_err();
    assert_eq!(err.code, codes::CANCELLED);
    assert!(h.result("activity-2025.pdf").is_none());
}

#[tokio::test]
async fn a_cancel_midway_ends_the_run_cancelled_with_its_last_checkpoint_and_no_report() {
    // Big enough that reading it outlasts the job's first progress tick.
    const ROWS: u32 = 1_000_000;
    let h = Harness::new(json!({})).await;
    let key = h.put_input("activity.csv", csv(ROWS)).await;
    let h = h.with_input(json!({"source": {"key": key}, "year": 2025}));
    let run = h.run(&ActivityReport);
    tokio::pin!(run);
    let mut cancelled = false;
    let outcome = loop {
        tokio::select! {
            outcome = &mut run => break outcome,
            () = tokio::time::sleep(std::time::Duration::from_millis(5)), if !cancelled => {
                if h.job().await.checkpoint.is_some() {
                    h.signal.cancel();
                    cancelled = true;
                }
            }
        }
    };
    assert!(cancelled, "the run ended before its first checkpoint: {outcome:?}");
    let err = outcome.unwrap_err();
    assert_eq!(err.code, codes::CANCELLED, "{err}");
    let saved: Activity = serde_json::from_value(h.job().await.checkpoint.unwrap()).unwrap();
    assert!(
        saved.records > 0 && saved.records < u64::from(ROWS),
        "stopped midway: {}",
        saved.records
    );
    assert!(h.result("activity-2025.pdf").is_none() && h.result("months.json").is_none());
}

#[tokio::test]
async fn bad_input_is_refused_at_submit_naming_each_field() {
    let errors = ActivityReport
        .validate(&json!({"source": {"key": "results/x"}, "year": 1900, "date_column": " "}))
        .unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["input.source.key", "input.year", "input.date_column"]);
    let errors = ActivityReport.validate(&json!({"year": 2025})).unwrap_err();
    assert_eq!(errors[0].field, "input");
    assert!(errors[0].message.contains("source"), "{}", errors[0].message);
    assert_eq!(JobHandler::job_type(&ActivityReport), JOB_TYPE);
}

#[tokio::test]
async fn a_missing_column_fails_the_job_permanently() {
    let h = Harness::new(json!({})).await;
    let key = h.put_input("activity.csv", "when,amount\n2025-01-01,1\n").await;
    let h = h.with_input(json!({"source": {"key": key}, "year": 2025}));
    let err = h.run(&ActivityReport).await.unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), (codes::INVALID_INPUT, false));
    assert!(err.message.contains("\"date\""), "{}", err.message);
}
