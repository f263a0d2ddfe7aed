//! The test images as processes: each starts on `$PORT`, answers as Knative's does,
//! and stops cleanly on SIGTERM.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct App {
    child: Child,
    port: u16,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(args: &[&str], env: &[(&str, &str)]) -> App {
    start_as(env!("CARGO_BIN_EXE_swell-testapp").as_ref(), args, env)
}

/// Starts the testapp through `program` (the binary or a link to it).
fn start_as(program: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> App {
    let port = free_port();
    let child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{args:?} never listened");
        std::thread::sleep(Duration::from_millis(10));
    }
    App { child, port }
}

async fn get(app: &App, path: &str) -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::get(format!("http://127.0.0.1:{}{path}", app.port))
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn helloworld_and_pizzaplanet_say_their_texts() {
    let hello = start(&["helloworld"], &[]);
    assert_eq!(
        get(&hello, "/any").await,
        (200, "Hello World! How about some tasty noodles?\n".into())
    );
    let v2 = start(&[], &[("SWELL_TESTAPP", "pizzaplanetv2")]);
    assert_eq!(
        get(&v2, "/").await.1,
        "Re-energize yourself with a slice of pepperoni!"
    );
}

#[tokio::test]
async fn singlethreaded_refuses_overlap() {
    let app = start(&["singlethreaded"], &[]);
    let (a, b) = tokio::join!(get(&app, "/"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        get(&app, "/").await
    });
    assert_eq!(a, (200, "One at a time".into()));
    assert_eq!(b.0, 500);
}

#[tokio::test]
async fn autoscale_validates_and_works() {
    let app = start(&["autoscale"], &[]);
    assert_eq!(
        get(&app, "/?prime=100").await,
        (200, "The largest prime less than 100 is 97.\n".into())
    );
    assert_eq!(get(&app, "/?sleep=-5").await.0, 400);
    assert_eq!(
        get(&app, "/?bloat=1").await,
        (200, "Allocated 1 Mb.\n".into())
    );
}

#[tokio::test]
async fn readiness_fails_on_request_and_its_probe_says_so() {
    let app = start(&["readiness"], &[]);
    assert_eq!(get(&app, "/healthz/readiness").await.0, 200);
    let probe = |app: &App| {
        Command::new(env!("CARGO_BIN_EXE_swell-testapp"))
            .args(["readiness", "probe"])
            .env("PORT", app.port.to_string())
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(probe(&app), Some(0));
    get(&app, "/start-failing").await;
    assert_eq!(
        get(&app, "/healthz/readiness").await,
        (500, "not healthy\n".into())
    );
    assert_eq!(probe(&app), Some(1));
}

#[test]
fn runtime_needs_port_and_sigterm_stops_gracefully() {
    let out = Command::new(env!("CARGO_BIN_EXE_swell-testapp"))
        .arg("runtime")
        .env_remove("PORT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PORT is not set"));
    let mut app = start(&["runtime"], &[]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(app.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = app.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn unknown_images_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_swell-testapp"))
        .arg("nonsense")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown image \"nonsense\""));
}

/// Run through a link named after an image (as `/ko-app/runtime` in an image), the
/// testapp is that image and its argv is left exactly as given.
#[tokio::test]
async fn a_link_named_after_an_image_runs_that_image_with_argv_untouched() {
    let t = tempfile::tempdir().unwrap();
    let link = t.path().join("runtime");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_swell-testapp"), &link).unwrap();
    let app = start_as(&link, &["abra", "cadabra"], &[]);
    let (status, body) = get(&app, "/").await;
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        info["host"]["args"],
        serde_json::json!([link.display().to_string(), "abra", "cadabra"])
    );
}

/// `volumes` writes its file into `$DATA_PATH` and serves it; with `SKIP_DATA_SERVE`
/// it only writes (an init container's job) and exits 0.
#[tokio::test]
async fn volumes_writes_then_serves_its_file() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().display().to_string();
    let status = Command::new(env!("CARGO_BIN_EXE_swell-testapp"))
        .arg("volumes")
        .env("DATA_PATH", &data)
        .env("SKIP_DATA_SERVE", "true")
        .status()
        .unwrap();
    assert!(status.success());
    let text = "From file in empty dir!";
    assert_eq!(
        std::fs::read_to_string(t.path().join("testfile")).unwrap(),
        text
    );
    std::fs::write(t.path().join("testfile"), "changed").unwrap();
    let app = start(
        &["volumes"],
        &[("DATA_PATH", data.as_str()), ("SKIP_DATA_WRITE", "true")],
    );
    assert_eq!(get(&app, "/").await, (200, "changed".into()));
}
