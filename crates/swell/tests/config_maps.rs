//! The `config-*` ConfigMaps: created on first start, validated on every edit (the
//! offending key named), and applied live — no restart — with the real kubectl.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::{KUBECTL, Server, eventually, manifest, service_yaml};

#[test]
fn config_maps_exist_are_validated_and_apply_live() {
    let server = Server::start_with(&["--backend", "fake"]);
    let k = server.kubectl(KUBECTL);
    let maps = k.ok(&["get", "configmaps", "-n", "knative-serving", "-o", "name"]);
    for m in [
        "config-autoscaler",
        "config-defaults",
        "config-deployment",
        "config-domain",
        "config-features",
        "config-gc",
        "config-network",
    ] {
        assert!(
            maps.contains(&format!("configmap/{m}")),
            "{m} missing:\n{maps}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let tagged = "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: tagged\nspec:\n  template:\n    spec:\n      containers:\n        - image: example.com/app:1\n  traffic:\n  - {latestRevision: true, percent: 100, tag: main}\n";
    k.ok(&[
        "apply",
        "-f",
        &manifest(&dir, "a.yaml", &service_yaml("hello", "example.com/app:1")),
    ]);
    k.ok(&["apply", "-f", &manifest(&dir, "b.yaml", tagged)]);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "ksvc/hello",
        "ksvc/tagged",
        "--timeout=60s",
    ]);
    assert_eq!(
        k.ok(&["get", "ksvc", "hello", "-o", "jsonpath={.status.url}"]),
        format!("http://hello.default.localhost:{}", server.ingress_port())
    );

    // A new default domain and templates reach every Route's URLs.
    k.ok(&[
        "patch",
        "cm",
        "config-domain",
        "-n",
        "knative-serving",
        "--type=merge",
        "-p",
        r#"{"data":{"example.com":"","localhost":null}}"#,
    ]);
    k.ok(&[
        "patch",
        "cm",
        "config-network",
        "-n",
        "knative-serving",
        "--type=merge",
        "-p",
        r#"{"data":{"domain-template":"{{.Name}}-{{.Namespace}}.{{.Domain}}"}}"#,
    ]);
    eventually("URLs on the new domain", || {
        let urls = k.ok(&[
            "get",
            "ksvc",
            "-o",
            "jsonpath={.items[*].status.url} {.items[*].status.traffic[*].url}",
        ]);
        (urls == format!("http://hello-default.example.com:{p} http://tagged-default.example.com:{p} http://main-tagged-default.example.com:{p}", p = server.ingress_port())).then_some(())
    });

    // An invalid edit is refused with the key named, and changes nothing.
    let err = k.fails(&[
        "patch",
        "cm",
        "config-defaults",
        "-n",
        "knative-serving",
        "--type=merge",
        "-p",
        r#"{"data":{"revision-timeout-seconds":"soon"}}"#,
    ]);
    assert!(err.contains("data.revision-timeout-seconds"), "{err}");
    let err = k.fails(&[
        "patch",
        "cm",
        "config-network",
        "-n",
        "knative-serving",
        "--type=merge",
        "-p",
        r#"{"data":{"domain-template":"{{.Name}}.{{.Labels.app}}"}}"#,
    ]);
    assert!(err.contains("data.domain-template"), "{err}");
    assert_eq!(
        k.ok(&[
            "get",
            "cm",
            "config-defaults",
            "-n",
            "knative-serving",
            "-o",
            "jsonpath={.data.revision-timeout-seconds}"
        ]),
        ""
    );

    // `kubectl edit` (scripted editor) changes the defaults new Services get.
    let edit = k
        .command(&["edit", "cm", "config-defaults", "-n", "knative-serving"])
        .env(
            "KUBE_EDITOR",
            r#"sed -i "s/^data:$/data:\n  revision-timeout-seconds: \"120\"/""#,
        )
        .output()
        .unwrap();
    assert!(
        edit.status.success(),
        "{}",
        String::from_utf8_lossy(&edit.stderr)
    );
    eventually("the new default to apply", || {
        let _ = k.run(&["delete", "ksvc", "probe"]);
        k.ok(&[
            "apply",
            "-f",
            &manifest(&dir, "p.yaml", &service_yaml("probe", "example.com/app:1")),
        ]);
        (k.ok(&[
            "get",
            "ksvc",
            "probe",
            "-o",
            "jsonpath={.spec.template.spec.timeoutSeconds}",
        ]) == "120")
            .then_some(())
    });
    // Features are live too: init containers are refused until enabled.
    let init = "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: init\nspec:\n  template:\n    spec:\n      initContainers:\n        - image: example.com/setup:1\n      containers:\n        - image: example.com/app:1\n";
    let err = k.fails(&["apply", "-f", &manifest(&dir, "i.yaml", init)]);
    assert!(err.contains("spec.template.spec.initContainers"), "{err}");
    k.ok(&[
        "patch",
        "cm",
        "config-features",
        "-n",
        "knative-serving",
        "--type=merge",
        "-p",
        r#"{"data":{"kubernetes.podspec-init-containers":"enabled"}}"#,
    ]);
    eventually("init containers to be allowed", || {
        k.run(&[
            "apply",
            "-f",
            &dir.path().join("i.yaml").display().to_string(),
        ])
        .status
        .success()
        .then_some(())
    });
}
