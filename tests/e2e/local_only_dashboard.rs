//! The operator's dashboard (`longrun-admin ui`) against a local runtime of
//! this test's own, in headless Chromium: its dead-letter page lists a dead
//! letter, and a click on its redrive link and the confirmation's button
//! redrives the job (which then runs to SUCCEEDED); a job's page shows its
//! progress rising to 100 % and then its result link. Forms without the
//! token, requests for another host and cross-site requests are refused.

use std::time::Duration;

use longrun_core::ports::{JobLifecycle, JobMessage, Transition};
use longrun_core::record::{codes, JobError};
use longrun_core::JobId;
use longrun_e2e::{LocalRuntime, Stack};
use serde_json::json;

/// `longrun-admin --local <api> ui --port <free>`, killed when dropped; its base URL.
async fn dashboard(runtime: &LocalRuntime) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(std::env::var("LONGRUN_ADMIN_BIN").expect("LONGRUN_ADMIN_BIN"))
        .args(["--local", &runtime.api, "ui", "--port", &port.to_string()])
        .kill_on_drop(true)
        .spawn()
        .expect("start longrun-admin ui");
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{base}/"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the dashboard did not answer at {base}");
}

/// The body of a GET of `url`.
async fn text_of(http: &reqwest::Client, url: String) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

/// The value of the form field `name` in `html`.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
#[ignore = "needs the emulator, LONGRUN_LOCAL_BIN, LONGRUN_ADMIN_BIN and chromium: make test"]
async fn the_dashboard_redrives_a_dead_letter_and_shows_a_job_to_its_result() {
    // Workers (and the dead-letter function) paused: the job waits as put.
    let mut runtime = LocalRuntime::start("longrun-dashboard", &["--no-workers"]).await;
    let mut stack = Stack::local(&runtime).await;
    let id = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 0.2}}))
        .await;
    let job_id = JobId::parse(&id).unwrap();
    // As SQS and the dead-letter function would leave it: the message in
    // the dead-letter queue, the job DEAD_LETTERED.
    let store = longrun_aws::DynamoJobStore::new(stack.dynamodb.clone(), &stack.table, 3_600);
    let error = JobError::permanent(codes::DEAD_LETTERED, "received too often");
    let dead = store
        .dead_letter(&job_id, &error, 0, longrun_core::time::now_ms())
        .await
        .unwrap();
    assert!(matches!(dead, Transition::Done(_)), "{dead:?}");
    let message = JobMessage {
        job_id: job_id.clone(),
        enqueued_at: longrun_core::time::now_ms(),
        generation: 0,
        limit: None,
    };
    let dead_letters = stack.local_ref("FastDeadLetterQueue").await;
    stack
        .send_message(&dead_letters, &serde_json::to_string(&message).unwrap())
        .await;

    let (_ui, base) = dashboard(&runtime).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = text_of(&http, format!("{base}/dead-letters")).await;
    assert!(page.contains(&id) && page.contains("DEAD_LETTERED"), "{page}");
    let confirm = text_of(&http, format!("{base}/dead-letters/redrive?job={id}")).await;
    assert!(
        confirm.contains("goes back to QUEUED as a fresh run"),
        "says what it does first: {confirm}"
    );
    let token = field(&confirm, "token");

    // Refused: a form without this dashboard's token, a request for another host.
    let forged = http
        .post(format!("{base}/dead-letters/redrive"))
        .form(&[("job", id.as_str()), ("token", "guessed")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    let rebound = http
        .get(format!("{base}/dead-letters"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status().as_u16(), 403);
    // What another site's page makes a browser send: refused, even with the token.
    let cross_site = http
        .post(format!("{base}/dead-letters/redrive"))
        .header("sec-fetch-site", "cross-site")
        .header("origin", "http://evil.example")
        .form(&[("job", id.as_str()), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status().as_u16(), 403);
    assert_eq!(
        stack.job(&id).await["status"],
        "DEAD_LETTERED",
        "nothing done by refused requests"
    );

    // Redriven in a real browser: the dead-letter page's link, the
    // confirmation's button, and the job's page after it.
    let browser = crate::webdriver::Browser::start().await;
    browser.open(&format!("{base}/dead-letters")).await;
    assert!(browser.text().await.contains(&id), "listed: {}", browser.text().await);
    browser
        .click(&format!("a[href=\"/dead-letters/redrive?job={id}\"]"))
        .await;
    assert!(
        browser.text().await.contains("goes back to QUEUED as a fresh run"),
        "says what it does first"
    );
    browser.click("#confirm").await;
    let mut landed = browser.url().await;
    for _ in 0..100 {
        if landed.ends_with(&format!("/jobs/{id}")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        landed = browser.url().await;
    }
    assert!(
        landed.ends_with(&format!("/jobs/{id}")),
        "on the job's page after: {landed}"
    );
    drop(browser);
    let queued = stack.job(&id).await;
    assert_eq!(queued["status"], "QUEUED", "{queued}");
    // Search by id opens the job's page; anything else is no job.
    let found = http.get(format!("{base}/jobs?id={id}")).send().await.unwrap();
    assert_eq!(
        (found.status().as_u16(), found.headers()["location"].to_str().unwrap()),
        (303, format!("/jobs/{id}").as_str())
    );
    let page = text_of(&http, format!("{base}/jobs/{id}")).await;
    assert!(page.contains("QUEUED") && page.contains("generation 1"), "{page}");
    let nonsense = http
        .get(format!("{base}/jobs?id=%2F%2Fevil.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(nonsense.status().as_u16(), 404);

    // Workers back: the redriven job runs (the stale dead letter cannot end it).
    runtime.restart_with(&[]).await;
    stack.api = runtime.api.clone();
    let done = stack.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");

    // A job's page in a real browser: progress rising to 100 %, then its result.
    let watched = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 4}}))
        .await;
    let dom = crate::local_only::browser::dom_in_chromium(&format!("{base}/jobs/{watched}")).await;
    assert!(dom.contains("<title>ended SUCCEEDED</title>"), "{dom}");
    let seen: Vec<u64> = dom
        .split("data-seen=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no progress seen: {dom}"))
        .split(',')
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress never goes back: {seen:?}"
    );
    assert!(
        seen.iter().any(|p| (1..100).contains(p)),
        "seen between 0 and 100: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&100), "{seen:?}");
    assert!(
        dom.contains("class=\"result\"") && dom.contains(&format!("results/{watched}/")),
        "the result link once it ended: {dom}"
    );
}

/// The job ids a dashboard page links to, in order.
fn linked_jobs(html: &str) -> Vec<String> {
    html.split("href=\"/jobs/")
        .skip(1)
        .filter_map(|rest| JobId::parse(rest.get(..36)?).map(|id| id.to_string()))
        .collect()
}

/// The number a page says its jobs count ("<p>N jobs: …").
fn jobs_counted(html: &str) -> u64 {
    let before = html.split(" jobs: ").next().unwrap_or_default();
    before
        .rsplit("<p>")
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no count in {html}"))
}

#[tokio::test]
#[ignore = "needs the emulator, LONGRUN_LOCAL_BIN, LONGRUN_ADMIN_BIN and chromium: make test"]
async fn the_dashboard_filters_and_pages_jobs_and_shows_an_owner_only_its_own() {
    let runtime = LocalRuntime::start("longrun-dashboard-jobs", &["--no-workers"]).await;
    let stack = Stack::local(&runtime).await;
    let sleep = json!({"type": "sleep", "input": {"seconds": 0.1}});
    let mut mine = Vec::new();
    for _ in 0..23 {
        mine.push(stack.submit_ok(&sleep).await);
    }
    let mut other = Stack::local(&runtime).await;
    other.owner = format!("{}-other", stack.owner);
    let theirs = other.submit_ok(&sleep).await;
    let (_ui, base) = dashboard(&runtime).await;
    let http = reqwest::Client::new();
    let get = |path: String| text_of(&http, format!("{base}{path}"));

    // By type and owner.
    assert_eq!(jobs_counted(&get("/jobs?type=sleep".into()).await), 24);
    assert_eq!(jobs_counted(&get("/jobs?type=report".into()).await), 0);
    let owned = get(format!("/jobs?owner={}&status=QUEUED", other.owner_key())).await;
    assert_eq!(
        (jobs_counted(&owned), linked_jobs(&owned)),
        (1, vec![theirs.clone()]),
        "{owned}"
    );

    // Paged: five items read a page, the `next part` links followed to the end.
    let (mut href, mut parts, mut counted, mut listed) = ("/jobs?status=QUEUED&read=5".to_owned(), 0, 0, Vec::new());
    loop {
        let page = get(href.clone()).await;
        parts += 1;
        counted += jobs_counted(&page);
        listed.extend(linked_jobs(&page));
        match page.split("id=next href=\"").nth(1) {
            Some(rest) => href = rest.split('"').next().unwrap().replace("&amp;", "&"),
            None => break,
        }
        assert!(parts < 100, "the parts end");
    }
    listed.sort();
    let mut every: Vec<String> = mine.iter().chain([&theirs]).cloned().collect();
    every.sort();
    assert!(parts >= 5, "read in parts: {parts}");
    assert_eq!(
        (counted, listed),
        (24, every),
        "every job counted and listed once over the parts"
    );
    let forged = http.get(format!("{base}/jobs?cursor=7b7d")).send().await.unwrap();
    assert_eq!(forged.status().as_u16(), 400);

    // The owner view: through the public API with the caller's token, 20 a
    // page; without a token the API's 401 is shown, and no job.
    let form = get("/mine".into()).await;
    let csrf = field(&form, "token");
    let show = |bearer: String, cursor: String, csrf: String| {
        let request = http.post(format!("{base}/mine")).form(&[
            ("token", csrf),
            ("bearer", bearer),
            ("status", String::new()),
            ("cursor", cursor),
        ]);
        async move {
            let answer = request.send().await.unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    };
    let (status, first) = show(stack.token(), String::new(), csrf.clone()).await;
    assert_eq!(status, 200, "{first}");
    let mut newest_first: Vec<String> = mine.iter().rev().cloned().collect();
    assert_eq!(linked_jobs(&first), newest_first[..20], "{first}");
    let (_, second) = show(stack.token(), field(&first, "cursor"), csrf.clone()).await;
    assert_eq!(linked_jobs(&second), newest_first.split_off(20), "{second}");
    assert!(!second.contains("id=next"), "the last page: {second}");
    let (status, refused) = show(String::new(), String::new(), csrf.clone()).await;
    assert_eq!(status, 401, "{refused}");
    assert!(
        refused.contains("id=error") && linked_jobs(&refused).is_empty(),
        "{refused}"
    );
    let (status, _) = show(stack.token(), String::new(), "guessed".into()).await;
    assert_eq!(status, 403, "a form without this dashboard's token");

    // And in a real browser: the token typed in, the button clicked.
    let browser = crate::webdriver::Browser::start().await;
    browser.open(&format!("{base}/mine")).await;
    browser.type_into("input[name=bearer]", &stack.token()).await;
    browser.click("#mine").await;
    let mut text = browser.text().await;
    for _ in 0..50 {
        if text.contains(&mine[22]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = browser.text().await;
    }
    assert!(text.contains(&mine[22]) && !text.contains(&theirs), "{text}");
}
