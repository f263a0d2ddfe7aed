//! The kn-style verbs (`swell service|revision|route|domain|events|config|completion`)
//! driven as a user drives them: the real binary, through the kubeconfig the server
//! wrote, against a server running the test app with the process backend.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::apps::{client, get, testapp};
use common::{KUBECTL, Server, eventually};
use std::process::{Command, Output, Stdio};

fn ok(server: &Server, args: &[&str]) -> String {
    let out = server.swell(args);
    assert!(
        out.status.success(),
        "swell {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Fails with exit code 1 and a one-line error; returns that line.
fn fails(out: Output, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{what}: one line: {err}");
    err.trim().to_string()
}

/// `service create NAME` running the test app's `image`, plus `extra` flags.
fn create(server: &Server, name: &str, image: &str, extra: &[&str]) -> String {
    let app = testapp();
    let mut args = vec![
        "service", "create", name, "--image", image, "--cmd", &app, "--arg", image,
    ];
    args.extend_from_slice(extra);
    ok(server, &args)
}

/// The URL printed after "is available at URL:".
fn printed_url(out: &str) -> String {
    let mut lines = out.lines();
    lines.find(|l| l.ends_with("is available at URL:"));
    lines.next().expect("a URL line").trim().to_string()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

#[test]
fn create_update_split_tag_scale_delete() {
    let server = Server::start_with(&[]);
    let port = server.ingress_port();
    let out = create(&server, "hello", "helloworld", &["--env", "TARGET=one"]);
    assert!(
        out.starts_with("Creating service 'hello' in namespace 'default':\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "Service 'hello' created to latest revision 'hello-00001' is available at URL:"
        ),
        "{out}"
    );
    let url = printed_url(&out);
    assert_eq!(url, format!("http://hello.default.localhost:{port}"));
    let rt = runtime();
    let hosts = [
        "hello.default.localhost",
        "current-hello.default.localhost",
        "candidate-hello.default.localhost",
    ];
    let c = client(&server, &hosts);
    let (status, body) = rt.block_on(get(&c, &url));
    assert_eq!((status, body.trim()), (200, common::apps::HELLO));

    // A new image: a second Revision, and traffic split between the two by kn's syntax.
    let out = ok(
        &server,
        &[
            "service",
            "update",
            "hello",
            "--image",
            "pizzaplanetv2",
            "--arg",
            "pizzaplanetv2",
        ],
    );
    assert!(
        out.contains(
            "Service 'hello' updated to latest revision 'hello-00002' is available at URL:"
        ),
        "{out}"
    );
    let out = ok(
        &server,
        &[
            "service",
            "update",
            "hello",
            "--traffic",
            "hello-00001=50,@latest=50",
            "--tag",
            "hello-00001=current,@latest=candidate",
        ],
    );
    assert!(
        out.contains("with latest revision 'hello-00002' (unchanged)"),
        "{out}"
    );
    let bodies: Vec<String> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..60 {
            v.push(get(&c, &url).await.1);
        }
        v
    });
    let old = bodies.iter().filter(|b| b.contains("noodles")).count();
    assert!(
        old > 0 && old < 60,
        "both Revisions answer: {old} of 60 from -00001"
    );
    let tag_url = |tag: &str| format!("http://{tag}-hello.default.localhost:{port}");
    assert!(
        rt.block_on(get(&c, &tag_url("current")))
            .1
            .contains("noodles")
    );
    assert!(
        !rt.block_on(get(&c, &tag_url("candidate")))
            .1
            .contains("noodles")
    );

    let revisions = ok(&server, &["revision", "list"]);
    let lines: Vec<&str> = revisions.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{revisions}");
    assert!(
        lines[1].starts_with("hello-00002")
            && lines[1].contains("50%")
            && lines[1].contains("candidate"),
        "{revisions}"
    );
    assert!(
        lines[2].starts_with("hello-00001") && lines[2].contains("current"),
        "{revisions}"
    );

    // Untag: the tag's URL goes away, the split stays.
    ok(
        &server,
        &["service", "update", "hello", "--untag", "current"],
    );
    let status = rt.block_on(get(&c, &tag_url("current"))).0;
    assert_eq!(status, 404);
    let traffic = ok(&server, &["service", "describe", "hello", "-o", "json"]);
    let svc: serde_json::Value = serde_json::from_str(&traffic).unwrap();
    assert_eq!(svc["kind"], "Service");
    let targets = svc["spec"]["traffic"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "{targets:?}");
    assert!(targets.iter().all(|t| t["percent"] == 50));

    // --scale-min 2: the new Revision runs two replicas.
    let out = ok(&server, &["service", "update", "hello", "--scale-min", "2"]);
    assert!(out.contains("'hello-00003'"), "{out}");
    let k = server.kubectl(KUBECTL);
    assert_eq!(
        k.ok(&[
            "get",
            "revision",
            "hello-00003",
            "-o",
            "jsonpath={.metadata.annotations.autoscaling\\.knative\\.dev/min-scale}"
        ]),
        "2"
    );
    eventually("two replicas of hello-00003", || {
        let n = k.ok(&[
            "get",
            "revision",
            "hello-00003",
            "-o",
            "jsonpath={.status.actualReplicas}",
        ]);
        (n == "2").then_some(())
    });
    let describe = ok(&server, &["service", "describe", "hello"]);
    for want in [
        "Name:        hello",
        &format!("URL:         {url}"),
        "Traffic:",
        "@latest (hello-00003)",
        "#candidate",
        "hello-00003   [3]",
        "2/2",
        "++   Ready",
        "Events:",
    ] {
        assert!(
            describe.contains(want),
            "describe shows {want:?}:\n{describe}"
        );
    }
    assert!(!describe.contains('\x1b'), "no colour in a pipe");

    let out = ok(&server, &["service", "delete", "hello"]);
    assert_eq!(
        out.trim(),
        "Service 'hello' successfully deleted in namespace 'default'."
    );
    assert!(k.run(&["get", "ksvc", "hello"]).status.code() == Some(1));
    assert_eq!(
        ok(&server, &["service", "list"]).trim(),
        "No services found."
    );
}

#[test]
fn lists_and_output_formats() {
    let server = Server::start_with(&[]);
    create(
        &server,
        "alpha",
        "helloworld",
        &["--label", "team=a", "--annotation", "note=x"],
    );
    create(&server, "beta", "helloworld", &["--no-wait"]);
    let list = eventually("both ready", || {
        let l = ok(&server, &["service", "list"]);
        (l.matches("True").count() == 2).then_some(l)
    });
    let header: Vec<&str> = list.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "URL",
            "LATEST",
            "AGE",
            "CONDITIONS",
            "READY",
            "REASON"
        ]
    );
    assert!(list.contains("3 OK / 3"), "{list}");
    let bare = ok(&server, &["service", "list", "--no-headers"]);
    assert_eq!(bare.lines().count(), 2);
    assert!(bare.lines().next().unwrap().starts_with("alpha"));
    assert_eq!(
        ok(&server, &["service", "list", "-o", "name"]),
        "service.serving.knative.dev/alpha\nservice.serving.knative.dev/beta\n"
    );
    let yaml = ok(&server, &["service", "list", "alpha", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: List") && yaml.contains("name: alpha") && !yaml.contains("name: beta"),
        "{yaml}"
    );
    let routes = ok(&server, &["route", "list"]);
    assert!(
        routes.starts_with("NAME") && routes.contains("alpha") && routes.contains("True"),
        "{routes}"
    );
    let route = ok(&server, &["route", "describe", "alpha"]);
    assert!(
        route.contains("@latest (alpha-00001)") && route.contains("100%"),
        "{route}"
    );
    let revision = ok(&server, &["revision", "describe", "alpha-00001"]);
    for want in ["Service:     alpha", "Replicas:", "++   Ready"] {
        assert!(revision.contains(want), "{want:?} in\n{revision}");
    }
    assert_eq!(
        ok(&server, &["revision", "list", "-s", "beta", "-o", "name"]),
        "revision.serving.knative.dev/beta-00001\n"
    );

    // Export: a manifest that applies cleanly elsewhere (no status, no server fields).
    let exported = ok(&server, &["service", "export", "alpha"]);
    assert!(
        exported.contains("apiVersion: serving.knative.dev/v1"),
        "{exported}"
    );
    assert!(
        exported.contains("team: a") && exported.contains("note: x"),
        "{exported}"
    );
    for gone in [
        "status:",
        "resourceVersion",
        "uid:",
        "creator",
        "generation",
    ] {
        assert!(!exported.contains(gone), "{gone} in\n{exported}");
    }
    ok(&server, &["service", "delete", "alpha"]);
    let dir = tempfile::tempdir().unwrap();
    let file = common::manifest(&dir, "alpha.yaml", &exported);
    assert!(ok(&server, &["apply", "-f", &file]).contains("created"));

    // apply: declarative; restating the same flags changes nothing.
    let app = testapp();
    let apply = [
        "service",
        "apply",
        "gamma",
        "--image",
        "helloworld",
        "--cmd",
        &app,
        "--arg",
        "helloworld",
    ];
    assert!(ok(&server, &apply).contains("created to latest revision 'gamma-00001'"));
    assert_eq!(
        ok(&server, &apply).trim(),
        "No changes to apply to service 'gamma'."
    );
    let mut changed = apply.to_vec();
    changed.extend(["--env", "A=1"]);
    assert!(ok(&server, &changed).contains("applied to latest revision 'gamma-00002'"));
    ok(&server, &["service", "delete", "--all"]);
    assert_eq!(
        ok(&server, &["service", "list"]).trim(),
        "No services found."
    );
}

#[test]
fn errors_are_one_line_with_exit_code_1() {
    let server = Server::start_with(&[]);
    let err = fails(
        server.swell(&["service", "describe", "nope"]),
        "unknown service",
    );
    assert_eq!(
        err,
        "Error from server (NotFound): services.serving.knative.dev \"nope\" not found"
    );
    fails(
        server.swell(&["service", "update", "nope", "--env", "A=1"]),
        "update unknown",
    );
    create(&server, "hello", "helloworld", &[]);
    let err = fails(
        server.swell(&[
            "service",
            "update",
            "hello",
            "--traffic",
            "hello-00001=50,@latest=40",
        ]),
        "traffic sum",
    );
    assert_eq!(err, "error: given traffic percents sum to 90, want 100");
    let err = fails(
        server.swell(&["service", "update", "hello", "--env", "FOO"]),
        "bad env",
    );
    assert_eq!(
        err,
        "error: invalid --env \"FOO\": expected KEY=VALUE, or KEY- to remove KEY"
    );
    let err = fails(
        server.swell(&["service", "create", "hello", "--image", "x"]),
        "exists",
    );
    assert!(
        err.contains("already exists and no --force option was given"),
        "{err}"
    );
    let replaced = create(&server, "hello", "helloworld", &["--force"]);
    assert!(
        replaced.contains("Service 'hello' replaced to latest revision 'hello-00001'"),
        "{replaced}"
    );
    let err = fails(
        server.swell(&["service", "update", "hello", "--untag", "nope"]),
        "untag",
    );
    assert_eq!(
        err,
        "error: tag(s) nope not present for any revisions of service hello"
    );
    let err = fails(server.swell(&["service", "create", "noimage"]), "no image");
    assert!(err.contains("--image"), "{err}");
    let err = fails(
        server.swell(&["service", "update", "hello", "--scale", "5..1"]),
        "scale",
    );
    assert!(err.contains("--scale"), "{err}");
    // The server's own validation comes back as one line too.
    let err = fails(
        server.swell(&["service", "update", "hello", "--concurrency-limit=-3"]),
        "validation",
    );
    assert!(
        err.starts_with("Error from server (Invalid)") && err.contains("containerConcurrency"),
        "{err}"
    );
    // Nothing changed: still one Revision.
    assert_eq!(
        ok(&server, &["revision", "list", "--no-headers"])
            .lines()
            .count(),
        1
    );

    // A server that is not there.
    let dir = tempfile::tempdir().unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let kubeconfig = std::fs::read_to_string(server.kubeconfig())
        .unwrap()
        .replace(&server.addr, &format!("127.0.0.1:{port}"));
    let path = common::manifest(&dir, "kubeconfig", &kubeconfig);
    let out = Command::new(env!("CARGO_BIN_EXE_swell"))
        .args(["service", "list", "--kubeconfig", &path])
        .output()
        .unwrap();
    let err = fails(out, "unreachable server");
    assert!(err.contains("cannot reach the API server"), "{err}");
}

#[test]
fn kubeconfig_context_and_namespace_work_as_with_a_cluster() {
    let server = Server::start_with(&[]);
    let k = server.kubectl(KUBECTL);
    k.ok(&["create", "namespace", "team"]);
    // A kubeconfig with two contexts, the default one pointing elsewhere: only --context
    // and -n choose where the CLI goes, as they would with any cluster.
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: swell\n  cluster:\n    server: {url}\n    certificate-authority: {pki}/ca.crt\n- name: nowhere\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: swell\n  context: {{cluster: swell, user: u}}\n- name: nowhere\n  context: {{cluster: nowhere, user: u}}\ncurrent-context: nowhere\nusers:\n- name: u\n  user: {{client-certificate: {pki}/admin.crt, client-key: {pki}/admin.key}}\n",
        url = server.url,
        pki = server.data_dir.join("pki").display(),
    );
    let path = common::manifest(&dir, "config", &config);
    let app = testapp();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_swell"))
            .args(args)
            .env("KUBECONFIG", &path)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&[
        "service",
        "create",
        "hello",
        "--image",
        "helloworld",
        "--cmd",
        &app,
        "--arg",
        "helloworld",
        "--context",
        "swell",
        "-n",
        "team",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("in namespace 'team'"), "{text}");
    assert_eq!(
        printed_url(&text),
        format!("http://hello.team.localhost:{}", server.ingress_port())
    );
    assert_eq!(
        k.ok(&["get", "ksvc", "-n", "team", "-o", "name"]).trim(),
        "service.serving.knative.dev/hello"
    );
    let out = run(&["service", "list"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the current context points nowhere"
    );
}

#[test]
fn progress_in_a_pipe_has_no_escape_codes() {
    let server = Server::start_with(&[]);
    let out = create(&server, "slow", "readiness", &["--env", "LISTEN_DELAY=1s"]);
    assert!(!out.contains('\x1b'), "no escape codes: {out:?}");
    assert!(
        !out.contains('⠋') && !out.contains('✓'),
        "no spinner: {out}"
    );
    // kn's timestamped lines: one per change, ending ready.
    let steps: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .collect();
    assert!(
        steps
            .iter()
            .all(|l| l.trim_start().split_once("s ").is_some()),
        "{out}"
    );
    assert!(
        steps
            .iter()
            .any(|l| l.contains("Revision \"slow-00001\"") && !l.contains("is ready")),
        "the wait shows: {out}"
    );
    assert!(steps.last().unwrap().ends_with("Ready to serve."), "{out}");
}

#[test]
fn progress_on_a_terminal_spins_then_ticks() {
    let server = Server::start_with(&[]);
    let session = format!("swell-progress-{}", std::process::id());
    let app = testapp();
    let command = format!(
        "{swell} service create slow --image readiness --cmd {app} --arg readiness --env LISTEN_DELAY=3s --kubeconfig {kc}; echo EXIT=$?; sleep 60",
        swell = env!("CARGO_BIN_EXE_swell"),
        kc = server.kubeconfig().display()
    );
    let tmux = |args: &[&str]| {
        let out = Command::new("tmux").args(args).output().expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "30",
        &command,
    ]);
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .args(["kill-session", "-t", &self.0])
                .status();
        }
    }
    let _kill = Kill(session.clone());
    let capture = |escapes: bool| {
        let mut args = vec!["capture-pane", "-p", "-t", &session];
        if escapes {
            args.push("-e");
        }
        tmux(&args)
    };
    // While the app is not listening yet, the Revision's line spins.
    let spinning = eventually("a spinner on the Revision's line", || {
        let screen = capture(false);
        screen
            .lines()
            .find(|l| {
                l.contains("Revision \"slow-00001\"")
                    && l.trim_start()
                        .starts_with(['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'])
            })
            .map(str::to_string)
    });
    assert!(!spinning.contains("ready"), "{spinning}");
    let done = eventually("the command to finish", || {
        let screen = capture(false);
        screen.contains("EXIT=").then_some(screen)
    });
    assert!(done.contains("EXIT=0"), "{done}");
    for step in [
        "Configuration \"slow\"",
        "Revision \"slow-00001\"",
        "Route \"slow\"",
        "Ingress",
    ] {
        let line = done
            .lines()
            .find(|l| l.contains(step))
            .unwrap_or_else(|| panic!("{step} in\n{done}"));
        assert!(line.trim_start().starts_with('✓'), "{line}");
    }
    // Each step is drawn once, in place: no stale copies above.
    assert_eq!(done.matches("Route \"slow\"").count(), 1, "{done}");
    assert!(
        done.contains("Service 'slow' created to latest revision 'slow-00001'"),
        "{done}"
    );
    let coloured = capture(true);
    assert!(
        coloured.contains("\x1b[32m✓"),
        "green ticks on a terminal: {coloured:?}"
    );
}

#[test]
fn domain_mappings_answer_on_their_own_host() {
    let server = Server::start_with(&[]);
    create(&server, "hello", "helloworld", &[]);
    assert_eq!(
        ok(
            &server,
            &[
                "domain",
                "create",
                "hello.example.com",
                "--ref",
                "ksvc:hello"
            ]
        )
        .trim(),
        "Domain mapping 'hello.example.com' created in namespace 'default'."
    );
    let port = server.ingress_port();
    let list = eventually("the mapping ready", || {
        let l = ok(&server, &["domain", "list"]);
        l.contains("True").then_some(l)
    });
    assert!(
        list.contains(&format!("http://hello.example.com:{port}")),
        "{list}"
    );
    let c = client(&server, &["hello.example.com"]);
    let rt = runtime();
    let (status, body) = rt.block_on(get(&c, &format!("http://hello.example.com:{port}/")));
    assert_eq!((status, body.trim()), (200, common::apps::HELLO));
    let describe = ok(&server, &["domain", "describe", "hello.example.com"]);
    for want in [
        "Reference:   Service hello (default)",
        "++   DomainClaimed",
        "++   ReferenceResolved",
        "++   IngressReady",
    ] {
        assert!(describe.contains(want), "{want:?} in\n{describe}");
    }
    // A mapping to nothing says why it is not ready.
    ok(
        &server,
        &["domain", "create", "ghost.example.com", "--ref", "ghost"],
    );
    let k = server.kubectl(KUBECTL);
    let (status, reason, _) = eventually("ReferenceResolved=False", || {
        let c = k.condition("domainmapping/ghost.example.com", "ReferenceResolved");
        (c.0 == "False").then_some(c)
    });
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ResolveFailed")
    );
    let err = fails(
        server.swell(&["domain", "create", "x.example.com", "--ref", "pod:x"]),
        "bad ref",
    );
    assert!(err.contains("--ref"), "{err}");
    ok(&server, &["domain", "delete", "hello.example.com"]);
    eventually("the host gone", || {
        let (status, _) = rt.block_on(get(&c, &format!("http://hello.example.com:{port}/")));
        (status == 404).then_some(())
    });
}

/// `swell completion SHELL` (needs no server).
fn completion(shell: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_swell"))
        .args(["completion", shell])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn events_config_and_completion() {
    let server = Server::start_with(&[]);
    create(&server, "hello", "helloworld", &[]);
    // Events are recorded as the controllers go: the Route's creation among the last.
    let events = eventually("the controllers' events", || {
        let e = ok(&server, &["events"]);
        e.contains("Created Route").then_some(e)
    });
    assert!(events.starts_with("LAST SEEN"), "{events}");
    assert!(
        events.contains("Created") && events.contains("service/hello"),
        "{events}"
    );
    let only = ok(
        &server,
        &["events", "--for", "configuration/hello", "--no-headers"],
    );
    assert!(!only.trim().is_empty(), "the Configuration has events");
    assert!(
        only.lines().all(|l| l.contains("configuration/hello")),
        "{only}"
    );

    assert_eq!(
        ok(&server, &["config", "get", "autoscaler.stable-window"]).trim(),
        "60s"
    );
    assert!(
        ok(
            &server,
            &["config", "set", "autoscaler.stable-window", "30s"]
        )
        .contains("stable-window set to \"30s\"")
    );
    assert_eq!(
        ok(&server, &["config", "get", "autoscaler.stable-window"]).trim(),
        "30s"
    );
    let all = ok(&server, &["config", "get", "autoscaler"]);
    assert!(
        all.contains("autoscaler.stable-window") && all.contains("set"),
        "{all}"
    );
    assert!(
        all.contains("autoscaler.enable-scale-to-zero") && all.contains("default"),
        "{all}"
    );
    // The server validates: a bad value is refused and nothing changes.
    let err = fails(
        server.swell(&["config", "set", "autoscaler.stable-window", "soon"]),
        "bad value",
    );
    assert!(err.contains("stable-window"), "{err}");
    assert_eq!(
        ok(&server, &["config", "get", "autoscaler.stable-window"]).trim(),
        "30s"
    );
    let err = fails(
        server.swell(&["config", "get", "nothing.key"]),
        "unknown map",
    );
    assert!(err.contains("unknown configuration map"), "{err}");

    for shell in ["bash", "zsh", "fish"] {
        let script = completion(shell);
        assert!(
            script.contains("service") && script.contains("scale-min"),
            "{shell}"
        );
    }
    // The bash script loads in bash and completes the verbs.
    let dir = tempfile::tempdir().unwrap();
    let file = common::manifest(&dir, "swell.bash", &completion("bash"));
    let out = Command::new("bash")
        .args([
            "-c",
            &format!(
                "source {file}; COMP_WORDS=(swell serv); COMP_CWORD=1; COMP_LINE='swell serv'; COMP_POINT=10; _swell swell serv swell; echo ${{COMPREPLY[@]}}"
            ),
        ])
        .output()
        .unwrap();
    let replies = String::from_utf8_lossy(&out.stdout);
    assert!(
        replies.contains("service"),
        "{replies} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
