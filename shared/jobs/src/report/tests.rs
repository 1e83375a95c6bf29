//! The report job's tests: aggregation tables, CSV edge cases, bounds.

// Through `JobHandler`, from JSON, as submit and the worker call it.
use bytes::Bytes;
use serde_json::{json, Value};

use super::{ReportJob, ReportLimits, ROWS_PER_PROGRESS};
use longrun_core::job_types::testing::{harness, input_key};
use longrun_core::job_types::JobHandler;
use longrun_core::ports::ObjectStore;
use longrun_core::record::codes;

/// A report job with the default limits.
fn report() -> ReportJob {
    report_with(&[])
}

/// A report job with the limits of a configuration with `overrides`.
fn report_with(overrides: &[(&str, &str)]) -> ReportJob {
    ReportJob::new(ReportLimits::from_config(&longrun_core::fixtures::config(overrides)).unwrap())
}

fn summary_of(h: &longrun_core::job_types::testing::Harness) -> Value {
    let key = h.ctx.result_key("summary.json");
    serde_json::from_slice(&h.objects.object(&key).expect("summary.json written").0).unwrap()
}

#[test]
fn validation_names_the_bad_fields() {
    let job = report();
    assert!(job
        .validate(&json!({"source": {"csv": "a,b\n1,2"}, "group_by": ["a"], "values": ["b"]}))
        .is_ok());
    let errors = job
        .validate(&json!({"source": {"key": "elsewhere.csv", "csv": "x"}, "group_by": [], "values": ["b"]}))
        .unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["input.source", "input.group_by"]);
    assert!(job
        .validate(&json!({"source": {"key": "../x"}, "group_by": ["a"], "values": ["b"]}))
        .is_err());
    let long_name = "c".repeat(257);
    let errors = job
        .validate(&json!({"source": {"csv": "a,b\n1,2"}, "group_by": ["a"], "values": [long_name]}))
        .unwrap_err();
    assert_eq!(errors[0].field, "input.values");
    assert!(job.validate(&json!({"group_by": ["a"], "values": ["b"]})).is_err());
    assert!(job.validate(&json!("report please")).is_err());
}

#[tokio::test]
async fn summarises_groups_from_an_s3_object() {
    let csv = "region,product,amount,qty\n\
               eu,a,10.5,1\n\
               us,a,3,2\n\
               eu,b,-2,\n\
               eu,a,1.5,4\n";
    let input = json!({"source": {"key": input_key("sales.csv")}, "group_by": ["region"], "values": ["amount", "qty"]});
    let h = harness(input.clone(), None).await;
    h.objects
        .put(&input_key("sales.csv"), Bytes::from(csv), "text/csv")
        .await
        .unwrap();
    let results = report().run(&h.ctx, &input).await.unwrap();
    assert_eq!(
        results.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["summary.json", "summary.csv"]
    );

    let summary = summary_of(&h);
    assert_eq!(summary["rows"], 4);
    let eu = &summary["groups"][0];
    assert_eq!(eu["key"]["region"], "eu");
    assert_eq!(eu["rows"], 3);
    assert_eq!(eu["stats"]["amount"]["sum"], 10.0);
    assert_eq!(eu["stats"]["amount"]["min"], -2.0);
    assert_eq!(eu["stats"]["amount"]["max"], 10.5);
    assert_eq!(eu["stats"]["qty"]["count"], 2, "blank cells are skipped");
    assert_eq!(eu["stats"]["qty"]["mean"], 2.5);
    assert_eq!(summary["groups"][1]["key"]["region"], "us");

    let csv_key = h.ctx.result_key("summary.csv");
    let csv_out = String::from_utf8(h.objects.object(&csv_key).unwrap().0.to_vec()).unwrap();
    let mut lines = csv_out.lines();
    assert_eq!(
        lines.next(),
        Some("region,rows,amount_count,amount_sum,amount_min,amount_max,amount_mean,qty_count,qty_sum,qty_min,qty_max,qty_mean")
    );
    assert_eq!(lines.next(), Some("eu,3,3,10,-2,10.5,3.3333333333333335,2,5,1,4,2.5"));
}

#[tokio::test]
async fn cells_are_trimmed_and_only_the_cells_used_must_be_utf8() {
    let key = input_key("mixed.csv");
    let input = json!({"source": {"key": key}, "group_by": ["g", "h"], "values": ["v"]});
    let h = harness(input.clone(), None).await;
    // Column `note` is not used: its Latin-1 byte does not matter. Group
    // cells differing only by surrounding whitespace (a no-break space
    // included, as spreadsheets export it) are one group, and a
    // key of two cells is not confused with another split differently.
    let csv = b" g , h ,v,note\n x , y ,1,caf\xe9\nx,y\xc2\xa0, 2\xc2\xa0,\nxy,,4,\nx,y z,8,\n".to_vec();
    h.objects.put(&key, Bytes::from(csv), "text/csv").await.unwrap();
    report().run(&h.ctx, &input).await.unwrap();
    let summary = summary_of(&h);
    assert_eq!(summary["rows"], 4);
    let groups: Vec<(String, String, f64)> = summary["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"]["g"].as_str().unwrap().to_owned(),
                g["key"]["h"].as_str().unwrap().to_owned(),
                g["stats"]["v"]["sum"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("x".to_owned(), "y".to_owned(), 3.0),
            ("x".to_owned(), "y z".to_owned(), 8.0),
            ("xy".to_owned(), "".to_owned(), 4.0)
        ]
    );

    // A used cell that is not UTF-8 fails with its place.
    let h = harness(input.clone(), None).await;
    let csv = b"g,h,v\nx,y,1\nx,\xff,2\n".to_vec();
    h.objects.put(&key, Bytes::from(csv), "text/csv").await.unwrap();
    let err = report().run(&h.ctx, &input).await.unwrap_err();
    assert_eq!(err.code, "invalid_csv");
    assert!(
        err.message.contains("line 3") && err.message.contains("\"h\""),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn bad_numbers_and_missing_columns_fail_permanently_with_the_place() {
    let input = json!({"source": {"csv": "g,v\nx,1\nx,abc\n"}, "group_by": ["g"], "values": ["v"]});
    let h = harness(input.clone(), None).await;
    let err = report().run(&h.ctx, &input).await.unwrap_err();
    assert_eq!(err.code, "invalid_number");
    assert!(!err.retryable);
    assert!(err.message.contains("line 3"), "{}", err.message);

    let input = json!({"source": {"csv": "g,v\nx,1\n"}, "group_by": ["nope"], "values": ["v"]});
    let err = report().run(&h.ctx, &input).await.unwrap_err();
    assert_eq!(err.code, "missing_column");
}

#[tokio::test]
async fn a_missing_input_object_is_a_permanent_error() {
    let input = json!({"source": {"key": input_key("none.csv")}, "group_by": ["g"], "values": ["v"]});
    let h = harness(input.clone(), None).await;
    let err = report().run(&h.ctx, &input).await.unwrap_err();
    assert_eq!(err.code, codes::INPUT_NOT_FOUND);
}

#[tokio::test]
async fn reports_progress_while_reading_large_files() {
    let mut csv = String::from("g,v\n");
    for i in 0..(ROWS_PER_PROGRESS * 3) {
        csv.push_str(&format!("g{},{}\n", i % 7, i));
    }
    let input = json!({"source": {"csv": csv}, "group_by": ["g"], "values": ["v"]});
    let h = harness(input.clone(), None).await;
    report().run(&h.ctx, &input).await.unwrap();
    let summary = summary_of(&h);
    assert_eq!(summary["rows"], ROWS_PER_PROGRESS * 3);
    assert_eq!(summary["groups"].as_array().unwrap().len(), 7);
    let job = longrun_core::ports::JobLifecycle::get(h.store.as_ref(), h.ctx.job_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.progress, 99, "last progress before results");
}

#[tokio::test]
async fn a_record_longer_than_the_cap_fails_before_the_reader_buffers_it() {
    // The CSV reader sees the long line only through the bound: it fails
    // having read little more than the cap, not the whole line.
    let cap = 1000;
    let h = harness(json!({}), None).await;
    let long_cell = "x".repeat(200_000);
    for (what, csv, line) in [
        ("record", format!("g,v\na,1\n{long_cell},2\nb,3\n"), 3),
        ("header", format!("g,v,{long_cell}\na,1\n"), 1),
        // A quoted field's line breaks do not end its record.
        ("quoted record", format!("g,v\n\"{}\",1\n", "ab\n".repeat(1000)), 2),
    ] {
        let input = json!({"source": {"key": input_key("long.csv")}, "group_by": ["g"], "values": ["v"]});
        h.objects
            .put(&input_key("long.csv"), Bytes::from(csv), "text/csv")
            .await
            .unwrap();
        let err = report_with(&[("MAX_CSV_RECORD_BYTES", "1000")])
            .run(&h.ctx, &input)
            .await
            .unwrap_err();
        assert_eq!(
            (err.code.as_str(), err.retryable),
            ("csv_record_too_long", false),
            "{what}"
        );
        assert!(err.message.contains(&format!("line {line}")), "{what}: {}", err.message);
        assert!(err.message.contains(&cap.to_string()), "{what}: {}", err.message);
    }

    // Records at the cap, quoted line breaks, doubled quotes and a stray
    // quote inside an unquoted field all pass.
    let at_cap = "y".repeat(cap - 2);
    let csv = format!("g,v\n{at_cap},1\n\"a\nb\",2\n\"say \"\"hi\"\"\",3\n5\" pipe,4\r\nz,5\n");
    let input = json!({"source": {"csv": csv}, "group_by": ["g"], "values": ["v"]});
    report_with(&[("MAX_CSV_RECORD_BYTES", "1000")])
        .run(&h.ctx, &input)
        .await
        .unwrap();
    let summary = summary_of(&h);
    assert_eq!(summary["rows"], 5);
}

/// The error of a report grouping by `g` and summing `value` over an
/// object holding `csv` (bytes, so not necessarily UTF-8).
async fn failure_on_object(
    h: &longrun_core::job_types::testing::Harness,
    csv: &[u8],
    value: &str,
) -> longrun_core::record::JobError {
    let key = input_key("failing.csv");
    h.objects
        .put(&key, Bytes::from(csv.to_vec()), "text/csv")
        .await
        .unwrap();
    let input = json!({"source": {"key": key}, "group_by": ["g"], "values": [value]});
    report().run(&h.ctx, &input).await.unwrap_err()
}

#[tokio::test]
async fn records_must_have_the_header_s_fields_and_the_header_must_be_utf8() {
    let input = json!({"source": {"csv": "g,v\nx,1\nx,2,3\n"}, "group_by": ["g"], "values": ["v"]});
    let h = harness(input.clone(), None).await;
    let err = report().run(&h.ctx, &input).await.unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("invalid_csv", false));
    assert!(
        err.message.contains("line 3") && err.message.contains("3 fields"),
        "{}",
        err.message
    );

    let err = failure_on_object(&h, b"g,caf\xe9\nx,1\n", "g").await;
    assert_eq!(err.code, "invalid_csv");
    assert!(err.message.contains("line 1"), "{}", err.message);

    // A byte order mark is not part of the first column's name.
    let input = json!({"source": {"csv": "\u{feff}g,v\nx,1\n"}, "group_by": ["g"], "values": ["v"]});
    report().run(&h.ctx, &input).await.unwrap();
    assert_eq!(summary_of(&h)["rows"], 1);
}

#[tokio::test]
async fn whitespace_other_than_ascii_is_trimmed_and_checked_on_every_row() {
    // A group first seen plain, then with a no-break space or a vertical
    // tab around it, is the same group; a value padded with them is
    // still a number, and a blank of them is blank. A cell that is not
    // UTF-8 fails even when its group is already known.
    let csv = "g,v\nx,1\nx\u{a0},2\n\u{b}x,\u{a0}3\u{a0}\nx,\u{a0}\n";
    let input = json!({"source": {"csv": csv}, "group_by": ["g"], "values": ["v"]});
    let h = harness(input.clone(), None).await;
    report().run(&h.ctx, &input).await.unwrap();
    let summary = summary_of(&h);
    assert_eq!(summary["groups"].as_array().unwrap().len(), 1, "{summary}");
    assert_eq!(summary["groups"][0]["rows"], 4);
    assert_eq!(summary["groups"][0]["stats"]["v"]["sum"], 6.0);
    assert_eq!(summary["groups"][0]["stats"]["v"]["count"], 3);

    let err = failure_on_object(&h, b"g,v\nx,1\nx,1\xff\n", "v").await;
    assert_eq!(err.code, "invalid_csv");
    assert!(err.message.contains("line 3"), "{}", err.message);

    let input = json!({"source": {"csv": "g,v\nx,inf\n"}, "group_by": ["g"], "values": ["v"]});
    let err = report().run(&h.ctx, &input).await.unwrap_err();
    assert_eq!(err.code, "invalid_number");
    assert!(
        err.message.contains("\"inf\" is not a finite number"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn errors_come_in_the_order_of_the_file() {
    // A bad number on line 3, then a record past the cap: the bad number
    // is reported, although the reader meets the long record first.
    let h = harness(json!({}), None).await;
    let key = input_key("ordered.csv");
    let csv = format!("g,v\nx,1\nx,abc\n{},2\n", "y".repeat(5000));
    h.objects.put(&key, Bytes::from(csv), "text/csv").await.unwrap();
    let input = json!({"source": {"key": key}, "group_by": ["g"], "values": ["v"]});
    let err = report_with(&[("MAX_CSV_RECORD_BYTES", "1000")])
        .run(&h.ctx, &input)
        .await
        .unwrap_err();
    assert_eq!(err.code, "invalid_number", "{}", err.message);
    assert!(err.message.contains("line 3"), "{}", err.message);
}

/// An endless CSV: a header, then `a,1` rows for ever.
struct EndlessCsv {
    header_sent: bool,
}

impl tokio::io::AsyncRead for EndlessCsv {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.header_sent {
            buf.put_slice(b"g,v\n");
            self.header_sent = true;
        }
        while buf.remaining() >= 4 {
            buf.put_slice(b"a,1\n");
        }
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_running_report_reports_progress_and_stops_when_cancelled() {
    use std::time::Duration;
    let h = harness(json!({}), None).await;
    let spec = super::aggregate::Spec {
        group_by: vec!["g".to_owned()],
        values: vec!["v".to_owned()],
        limits: ReportLimits::from_config(&longrun_core::fixtures::config(&[])).unwrap(),
        etag: None,
    };
    let endless = Box::pin(EndlessCsv { header_sent: false });
    let summarising = super::reading::summarise(&h.ctx, endless, None, spec, None);
    tokio::pin!(summarising);
    let watched = tokio::time::timeout(Duration::from_secs(60), async {
        // Progress appears while the parser reads (no size: 50%).
        loop {
            tokio::select! {
                _ = &mut summarising => panic!("an endless input cannot end"),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            let job = longrun_core::ports::JobLifecycle::get(h.store.as_ref(), h.ctx.job_id())
                .await
                .unwrap()
                .unwrap();
            if job.progress_message.as_deref().is_some_and(|m| m.starts_with("read ")) {
                assert_eq!(job.progress, 50);
                break;
            }
        }
        h.signal.cancel();
        (&mut summarising).await
    })
    .await
    .expect("progress is reported and a cancelled report stops");
    assert_eq!(watched.unwrap_err().code, codes::CANCELLED);
}

#[tokio::test]
async fn more_groups_than_the_cap_fail_at_the_first_group_past_it() {
    let input = json!({"source": {"csv": "g,v\na,1\nb,2\na,3\nc,4\nd,5\ne,6\n"}, "group_by": ["g"], "values": ["v"]});
    let h = harness(input.clone(), None).await;
    let err = report_with(&[("MAX_REPORT_GROUPS", "3")])
        .run(&h.ctx, &input)
        .await
        .unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("too_many_groups", false));
    assert!(err.message.contains("line 6"), "{}", err.message);
    assert!(err.message.contains("more than 3 groups"), "{}", err.message);

    // At the cap is fine.
    let input = json!({"source": {"csv": "g,v\na,1\nb,2\na,3\nc,4\n"}, "group_by": ["g"], "values": ["v"]});
    report_with(&[("MAX_REPORT_GROUPS", "3")])
        .run(&h.ctx, &input)
        .await
        .unwrap();
}

#[tokio::test]
async fn groups_of_long_keys_fail_at_the_byte_budget_before_the_count() {
    // Five groups of 10 KB keys: about 100 KB of memory, over a 64 KB budget
    // at the fourth (the count of groups is far from its cap).
    let rows: String = (0..5).map(|i| format!("{}{i},1\n", "k".repeat(10_000))).collect();
    let input = json!({"source": {"csv": format!("g,v\n{rows}")}, "group_by": ["g"], "values": ["v"]});
    let h = harness(input.clone(), None).await;
    let err = report_with(&[("MAX_REPORT_GROUP_BYTES", "65536")])
        .run(&h.ctx, &input)
        .await
        .unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("too_many_groups", false));
    assert!(err.message.contains("MAX_REPORT_GROUP_BYTES"), "{}", err.message);
    assert!(
        err.message.contains("line 5"),
        "the fourth group is line 5: {}",
        err.message
    );

    // The same groups fit a budget of 1 MiB.
    report_with(&[("MAX_REPORT_GROUP_BYTES", "1048576")])
        .run(&h.ctx, &input)
        .await
        .unwrap();
}

#[tokio::test]
async fn error_messages_quote_only_excerpts_of_cells_and_columns() {
    let huge = "9x".repeat(100_000);
    let input = json!({"source": {"csv": format!("g,v\na,{huge}\n")}, "group_by": ["g"], "values": ["v"]});
    let h = harness(input.clone(), None).await;
    let err = report().run(&h.ctx, &input).await.unwrap_err();
    assert_eq!(err.code, "invalid_number");
    assert!(err.message.len() < 200, "{}", err.message);
    assert!(err.message.contains("line 2"), "{}", err.message);

    let many_long_columns: Vec<String> = (0..100).map(|i| format!("{i}{}", "c".repeat(5_000))).collect();
    let csv = format!("{}\n", many_long_columns.join(","));
    let input = json!({"source": {"csv": csv}, "group_by": ["nope"], "values": ["v"]});
    let err = report().run(&h.ctx, &input).await.unwrap_err();
    assert_eq!(err.code, "missing_column");
    assert!(err.message.contains("and 92 more"), "{}", err.message);
    assert!(
        !err.message.ends_with(longrun_core::record::TRUNCATION_MARKER),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn an_input_that_ends_short_of_its_size_is_a_failed_read_not_a_summary() {
    let h = harness(json!({}), None).await;
    let spec = super::aggregate::Spec {
        group_by: vec!["g".to_owned()],
        values: vec!["v".to_owned()],
        limits: ReportLimits::from_config(&longrun_core::fixtures::config(&[])).unwrap(),
        etag: None,
    };
    let csv = b"g,v\na,1\nb,2\n".to_vec();
    let claimed = csv.len() as u64 + 100;
    // As the context opens every input: held to the size the store gave.
    let cut = longrun_core::ports::exact_length(longrun_core::ports::ObjectReader {
        size: Some(claimed),
        etag: None,
        body: Box::pin(std::io::Cursor::new(csv)),
    });
    let err = super::reading::summarise(&h.ctx, cut.body, cut.size, spec, None)
        .await
        .expect_err("a body cut short must not be summed as the whole input");
    assert_eq!((err.code.as_str(), err.retryable), (codes::STORAGE, true), "{err:?}");
    assert!(
        err.message.contains("the object ended after 12 of 112 bytes"),
        "{}",
        err.message
    );
}
