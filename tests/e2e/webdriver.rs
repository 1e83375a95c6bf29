//! Just enough WebDriver (the W3C protocol, JSON over HTTP) to drive
//! headless Chromium through Debian's `chromedriver`: open a page, find an
//! element by CSS selector, click it, read the URL and the page's text.
//! `make test` installs `chromium-driver` with `chromium` (as root).

use std::time::Duration;

use serde_json::{json, Value};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session; its driver (and with it the browser) is killed when dropped.
pub(crate) struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: tokio::process::Child,
}

impl Browser {
    /// Starts `chromedriver` on a free port and a headless Chromium session.
    pub(crate) async fn start() -> Browser {
        let driver_bin = std::env::var("LONGRUN_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        // The driver wants the browser's full path.
        let chromium = std::env::var("LONGRUN_CHROMIUM").unwrap_or_else(|_| on_path("chromium"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("run {driver_bin} (make test installs Debian's chromium-driver as root): {e}"));
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let profile = std::env::temp_dir().join(format!("longrun-webdriver-{}", uuid::Uuid::new_v4()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     format!("--user-data-dir={}", profile.display())],
        }}}});
        for _ in 0..100 {
            if let Ok(answer) = http.post(format!("{base}/session")).json(&capabilities).send().await {
                let body: Value = answer.json().await.unwrap_or_default();
                let session = body["value"]["sessionId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no session: {body}"))
                    .to_owned();
                return Browser {
                    http,
                    session: format!("{base}/session/{session}"),
                    _driver: driver,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{driver_bin} did not answer on port {port}");
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let request = self.http.request(method, format!("{}{path}", self.session));
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let answer: Value = request.send().await.expect("the driver answers").json().await.unwrap();
        assert!(answer["value"]["error"].is_null(), "{path}: {answer}");
        answer["value"].clone()
    }

    /// Opens `url` and waits for it to load.
    pub(crate) async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The first element `selector` finds (waiting up to 10 s for one).
    async fn find(&self, selector: &str) -> String {
        for _ in 0..100 {
            let found = self
                .http
                .post(format!("{}/element", self.session))
                .json(&json!({"using": "css selector", "value": selector}))
                .send()
                .await
                .expect("the driver answers")
                .json::<Value>()
                .await
                .unwrap();
            if let Some(element) = found["value"][ELEMENT].as_str() {
                return element.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no element {selector} on {}", self.url().await);
    }

    /// Clicks the first element `selector` finds.
    pub(crate) async fn click(&self, selector: &str) {
        let element = self.find(selector).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Types `text` into the first element `selector` finds.
    pub(crate) async fn type_into(&self, selector: &str, text: &str) {
        let element = self.find(selector).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// The page's URL now.
    pub(crate) async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's visible text now.
    pub(crate) async fn text(&self) -> String {
        let body = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": "body"})),
            )
            .await;
        let element = body[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no body element: {body}"))
            .to_owned();
        self.call(reqwest::Method::GET, &format!("/element/{element}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// `program`'s full path on `PATH` (itself when it is not there).
fn on_path(program: &str) -> String {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .map_or_else(|| program.to_owned(), |path| path.display().to_string())
}
