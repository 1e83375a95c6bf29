//! End to end on the local runtime, as the app's own binary runs it: the
//! app's `activity-report-local` (longrun's local runtime with this app's
//! registry) against the emulator, driven through `longrun-client` as a
//! caller would: upload → submit → worker → status → result download, and a
//! `422` for bad input. Needs the emulator (`make test` starts it and sets
//! `AWS_ENDPOINT_URL`), so it is ignored by a plain `cargo test`.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use longrun_client::api::SubmitRequest;
use longrun_client::{Client, ClientError};
use serde_json::json;

/// The runtime, killed when the test ends however it ends.
struct Runtime(Child);

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start() -> (Runtime, String) {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: run this through `make test`"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stack = format!("activity-report-{}", std::process::id());
    let template = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    let log = std::env::temp_dir().join(format!("{stack}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_activity-report-local"))
        .args(["--template", template, "--stack", &stack, "--port", &port.to_string()])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("start activity-report-local");
    let runtime = Runtime(child);
    let api = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while !reqwest::get(format!("{api}/_local/health"))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the runtime did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (runtime, api)
}

fn request(body: serde_json::Value) -> SubmitRequest {
    serde_json::from_value(body).unwrap()
}

#[tokio::test]
#[ignore = "needs the emulator: make test"]
async fn an_uploaded_csv_becomes_a_pdf_report_through_the_whole_stack() {
    let (_runtime, api) = start().await;
    let client = Client::new(&api, "alice").unwrap();
    let dir = std::env::temp_dir().join(format!("activity-report-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv_path = dir.join("activity.csv");
    let mut csv = String::from("date,amount,customer\n");
    for i in 0..20_000u32 {
        csv.push_str(&format!(
            "2025-{:02}-{:02},{}.5,c{}\n",
            1 + i % 12,
            1 + i % 28,
            i % 50,
            i % 977
        ));
    }
    std::fs::write(&csv_path, &csv).unwrap();
    let key = client.upload_file(&csv_path).await.unwrap();

    let bad = client
        .submit(
            &request(json!({"type": "activity-report", "input": {"source": {"key": key}, "year": 1066}})),
            None,
        )
        .await
        .unwrap_err();
    let ClientError::Problem(problem) = bad else {
        panic!("expected a problem, got {bad:?}")
    };
    assert_eq!(problem.status, 422);
    assert_eq!(problem.errors[0].field, "input.year", "{problem:?}");

    let job = client
        .submit(
            &request(json!({"type": "activity-report", "input": {"source": {"key": key}, "year": 2025}})),
            None,
        )
        .await
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(120), client.wait(&job.id, |_| {}))
        .await
        .expect("the job ends within two minutes")
        .unwrap();
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let files = client.download_results(&done, &dir.join("out")).await.unwrap();
    let pdf = std::fs::read(
        files
            .iter()
            .find(|f| f.ends_with("activity-2025.pdf"))
            .expect("the report"),
    )
    .unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    assert!(String::from_utf8_lossy(&pdf).contains("(2025: 20000 records"));
    let months: serde_json::Value =
        serde_json::from_slice(&std::fs::read(files.iter().find(|f| f.ends_with("months.json")).unwrap()).unwrap())
            .unwrap();
    assert_eq!(months["records"], 20_000);
    assert_eq!(months["months"][0]["count"], 1_667);
    let _ = std::fs::remove_dir_all(&dir);

    // The served contract names this app's job type, its input derived
    // from `ActivityInput` (doc comments as descriptions).
    let document = reqwest::get(format!("{api}/openapi.yaml"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "activity-report: '#/components/schemas/ActivityReportJobRequest'",
        "$ref: '#/components/schemas/ActivityReportInput'",
        "description: The year to report.",
    ] {
        assert!(
            document.contains(expected),
            "{expected:?} missing from the served document"
        );
    }
}
