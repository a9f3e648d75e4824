//! The console in a real browser (headless Chromium over WebDriver): sign in, start a run and
//! watch it finish, cancel one, replay a delivery, see the charts draw with data, and, signed in
//! as a `user`, be refused an admin action. One engine, one browser session per role.
//!
//! With `COMPOZY_CONSOLE_SCREENSHOTS=<dir>` it also saves a PNG of each page there
//! (`scripts/console-screenshots.sh` regenerates `docs/console/` this way).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::console::{run_status, start, start_run};
use common::webdriver::{self, Browser, Driver};

fn shots() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("COMPOZY_CONSOLE_SCREENSHOTS")?);
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    Some(dir)
}

fn shoot(b: &Browser<'_>, name: &str) {
    if let Some(dir) = shots() {
        b.screenshot(&dir.join(format!("{name}.png")));
    }
}

fn sign_in(b: &Browser<'_>, base: &str, key: &str) {
    b.go(&format!("{base}/console"));
    b.wait_for("input#key");
    assert!(b.url().ends_with("/console/sign-in"), "{}", b.url());
    b.type_into("input#key", key);
    b.click("section.sign-in button[type=submit]");
    b.wait_for("canvas[data-series]");
}

/// API reads, runs, accepted deliveries and refused ones (an unknown slug) for `how_long`.
fn traffic(engine: &common::Engine, how_long: Duration) {
    let end = Instant::now() + how_long;
    let json = [("content-type", "application/json")];
    let mut i = 0u64;
    while Instant::now() < end {
        let _ = engine.get("/api/v0/workflows");
        if i.is_multiple_of(2) {
            let _ = common::post(engine.addr, "/api/v0/hooks/deploy", &json, r#"{"service":"api"}"#);
        }
        if i.is_multiple_of(10) {
            start_run(engine, "quick", "{}");
            let _ = common::post(engine.addr, "/api/v0/hooks/nope", &json, "{}");
        }
        if i.is_multiple_of(25) {
            let _ = engine.get("/api/v0/executions/not-a-run");
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The run id in a run page's URL (`…/runs/{id}?notice=…`).
fn run_in_url(b: &Browser<'_>) -> String {
    let url = b.url();
    let tail = url.rsplit("/runs/").next().expect("a run page");
    tail.split('?').next().expect("id").to_string()
}

#[test]
fn operators_use_the_console_in_a_browser() {
    let (chromium, chromedriver) = match webdriver::find() {
        Ok(found) => found,
        Err(why) => return compozy_testkit::service_missing("chromium and chromedriver (.ci/install)", why),
    };
    let dir = tempfile::tempdir().expect("dir");
    // Page loads, self-refreshing pages and chart polls of one principal in a minute: more than
    // the default 100 per minute an operator needs, when a test clicks through everything.
    let env = [("COMPOZY_AUTH_RATE_LIMIT_DEFAULT_REQUESTS", "1000".to_string())];
    let (engine, user_key) = start(dir.path(), &env);
    let base = format!("http://{}", engine.addr);
    let driver = Driver::start(&chromedriver);

    {
        let b = driver.browser(&chromium);
        b.go(&format!("{base}/console"));
        b.wait_for("input#key");
        shoot(&b, "sign-in");
        sign_in(&b, &base, &engine.key);
        assert_eq!(b.text("main h1"), "Overview");

        // Start a run from the runs page; watch it appear and finish.
        b.go(&format!("{base}/console/runs"));
        b.click("details.start summary");
        b.click("details.start select[name=workflow] option[value=quick]");
        b.click("details.start button[type=submit]");
        b.wait_for("p.notice");
        let run = run_in_url(&b);
        b.eventually("the started run succeeds on its page", |b| {
            b.attribute("#run-status", "data-status").as_deref() == Some("succeeded")
        });
        shoot(&b, "run");
        b.go(&format!("{base}/console/runs"));
        b.wait_for(&format!("tr[data-run='{run}'][data-status=succeeded]"));

        // Cancel a long run from its page.
        let slow = start_run(&engine, "slow", r#"{"note": "<b>not bold</b>"}"#);
        b.go(&format!("{base}/console/runs/{slow}"));
        b.click("form[action$='/cancel'] button");
        b.wait_for("p.notice");
        b.eventually("the run shows cancelled", |b| {
            b.attribute("#run-status", "data-status").as_deref() == Some("cancelled")
        });
        assert_eq!(run_status(&engine, &slow), "cancelled");
        assert!(b.source().contains("&lt;b&gt;not bold&lt;/b&gt;"), "input shown escaped");

        // Replay a delivery: a new run, linked to nothing the browser typed.
        let (status, _, _) = common::post(
            engine.addr,
            "/api/v0/hooks/deploy",
            &[("content-type", "application/json")],
            r#"{"service":"api"}"#,
        )
        .expect("exchange");
        assert_eq!(status, 202);
        b.go(&format!("{base}/console/webhooks"));
        b.wait_for("tr[data-delivery]");
        shoot(&b, "webhooks");
        b.click("tr[data-delivery] form[action$='/replay'] button");
        b.wait_for("p.notice");
        assert!(b.text("p.notice").contains("replayed"), "{}", b.source());

        // The charts draw the last minutes from the in-process samples.
        b.go(&format!("{base}/console"));
        b.eventually("the request chart draws points", |b| {
            b.attribute("canvas[data-series=requests_per_s]", "data-points")
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n >= 2)
        });
        let latest = b.text("[data-latest=requests_per_s]");
        assert!(latest.ends_with("/s"), "{latest}");
        if shots().is_some() {
            // A minute of traffic, so the pictured charts have something to show.
            traffic(&engine, Duration::from_secs(60));
        }
        shoot(&b, "overview");
        for page in ["runs", "queues", "workers", "project"] {
            b.go(&format!("{base}/console/{page}"));
            b.wait_for("main h1");
            shoot(&b, page);
        }

        b.click("header form[action$='/sign-out'] button");
        b.wait_for("input#key");
    }

    // A `user` reads, but an admin action is refused.
    let broken = start_run(&engine, "broken", "{}");
    engine.eventually("the broken run fails", |e| run_status(e, &broken) == "failed");
    let b = driver.browser(&chromium);
    sign_in(&b, &base, &user_key);
    assert!(b.source().contains("role user"), "the page says who is signed in");
    b.go(&format!("{base}/console/runs/{broken}"));
    b.click("form[action$='/retry'] button");
    b.wait_for("main h1");
    assert_eq!(b.text("main h1"), "Admin role required");
    let (_, _, run) = engine.get(&format!("/api/v0/executions/{broken}"));
    assert!(run.contains(r#""retried_by":null"#), "nothing was retried: {run}");
}
