//! Cross-origin access in a real browser: headless Chromium loads a page
//! from an origin of its own, and the page submits a job to the API with
//! `fetch` (a preflighted request: it sends `Authorization`), asks for a
//! stream and follows it with `EventSource` to its `end` event. From an
//! origin in the stack's `AllowedOrigins` it gets there; from any other the
//! browser refuses the first answer. The page writes what happened into its
//! title, which `--dump-dom` prints. Chromium is Debian's (`chromium`,
//! which `make test` installs as root when it is missing).

use std::time::Duration;

use longrun_e2e::{LocalRuntime, Stack};

/// The page: submit, poll once, stream, and the outcome in the title.
fn page(api: &str, token: &str) -> String {
    format!(
        r#"<!doctype html><html><head><title>started</title></head><body><script>
const api = "{api}", auth = {{authorization: "Bearer {token}"}};
const done = (text) => {{ document.title = text; }};
let step = "submit";
(async () => {{
  const submitted = await fetch(api + "/jobs", {{method: "POST",
    headers: {{...auth, "content-type": "application/json"}},
    body: JSON.stringify({{type: "sleep", input: {{seconds: 5}}}})}});
  const job = await submitted.json();
  const where = submitted.headers.get("location");
  step = "poll";
  const polled = await (await fetch(api + "/jobs/" + job.id, {{headers: auth}})).json();
  step = "stream";
  const ticket = await (await fetch(api + "/jobs/" + job.id + "/stream", {{method: "POST", headers: auth}})).json();
  const seen = [];
  const events = new EventSource(ticket.url);
  events.addEventListener("job", (e) => seen.push(JSON.parse(e.data).progress));
  events.addEventListener("end", (e) => {{
    events.close();
    const end = JSON.parse(e.data);
    done(`end ${{end.status}} ${{polled.id === job.id}} ${{where !== null}} ${{seen.join(",")}}`);
  }});
  events.onerror = () => {{ if (events.readyState === 2) done("refused at the stream's events"); }};
}})().catch((err) => done(`refused at ${{step}}: ${{err.name}}`));
</script></body></html>"#
    )
}

/// Serves `html` at `/` on `listener` (its origin is the page's).
fn serve(listener: tokio::net::TcpListener, html: String) {
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
}

/// The page at `url` as headless Chromium leaves it, printed by `--dump-dom`.
pub(crate) async fn dom_in_chromium(url: &str) -> String {
    let chromium = std::env::var("LONGRUN_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let profile = std::env::temp_dir().join(format!("longrun-chromium-{}", uuid::Uuid::new_v4()));
    let run = tokio::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=30000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("chromium finishes the page")
        .unwrap_or_else(|e| panic!("run {chromium} (make test installs Debian's chromium as root): {e}"));
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        !dom.is_empty(),
        "chromium printed no page: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    dom
}

/// The title of the page at `url` once headless Chromium finished with it.
async fn title_in_chromium(url: &str) -> String {
    let dom = dom_in_chromium(url).await;
    let title = dom
        .split("<title>")
        .nth(1)
        .and_then(|rest| rest.split("</title>").next())
        .unwrap_or_else(|| panic!("no title in the page chromium printed: {dom}"));
    title.to_owned()
}

#[tokio::test]
#[ignore = "needs the emulator, LONGRUN_LOCAL_BIN and chromium: make test"]
async fn a_page_on_an_allowed_origin_follows_its_job_to_the_end_and_one_on_another_origin_cannot() {
    let allowed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let allowed_origin = format!("http://{}", allowed.local_addr().unwrap());
    let other_origin = format!("http://{}", other.local_addr().unwrap());
    let runtime = LocalRuntime::start(
        "longrun-browser",
        &["--parameter-overrides", &format!("AllowedOrigins={allowed_origin}")],
    )
    .await;
    let stack = Stack::local(&runtime).await;
    let html = page(&stack.api, &stack.token());
    serve(allowed, html.clone());
    serve(other, html);

    let title = title_in_chromium(&allowed_origin).await;
    let parts: Vec<&str> = title.split(' ').collect();
    assert_eq!(
        parts.get(..4),
        Some(&["end", "SUCCEEDED", "true", "true"][..]),
        "submitted, polled (Location readable), streamed to the end: {title}"
    );
    let progress: Vec<u64> = parts
        .get(4)
        .unwrap_or(&"")
        .split(',')
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(!progress.is_empty(), "job events before the end: {title}");

    let title = title_in_chromium(&other_origin).await;
    // Refused at its first request: the preflight of its POST gets no
    // allow headers, so the browser never sends the POST.
    assert_eq!(title, "refused at submit: TypeError", "another origin reads nothing");
    let submitted = runtime
        .log_events()
        .iter()
        .filter(|e| e["message"] == "job accepted")
        .count();
    assert_eq!(submitted, 1, "only the allowed page's job was submitted");
}
