//! Secure by default, checked as a user and an attacker would: the API over TLS only,
//! certificates made once and kept, file modes, 401 for missing and wrong credentials
//! (tokens, certificates of another CA, expired ones), RBAC with the real kubectl
//! (forbidden, a RoleBinding, `auth can-i`, the escalation rule, bad RBAC objects), the
//! operator's own certificates, and an ingress that never serves the API.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::{KUBECTL, Kubectl, Server, http_with, manifest, service_yaml, versioned_kubectl};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// A kubectl for `user` in `groups`, with a kubeconfig from `swell kubeconfig create`.
fn kubectl_as(server: &Server, dir: &tempfile::TempDir, user: &str, groups: &[&str]) -> Kubectl {
    let mut args = vec!["kubeconfig", "create", "--user", user];
    for g in groups {
        args.extend(["--group", g]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_swell"))
        .args(&args)
        .env("SWELL_DATA_DIR", &server.data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.path().join(format!("{user}.kubeconfig"));
    std::fs::write(&path, &out.stdout).unwrap();
    Kubectl {
        binary: KUBECTL.to_string(),
        kubeconfig: path,
        cache: tempfile::tempdir().unwrap(),
    }
}

/// `kubectl auth can-i …`'s answer (it exits 1 for "no").
fn can_i(k: &Kubectl, args: &[&str]) -> String {
    let out = k.run(&[&["auth", "can-i"], args].concat());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A client certificate for `cn` signed by `issuer`, valid from `from` for `days`.
fn client_cert(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    from: time::OffsetDateTime,
    days: i64,
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = from;
    params.not_after = from + time::Duration::days(days);
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A CA of the test's own.
fn own_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

async fn status_of(client: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let resp = client
        .get(url)
        .send()
        .await
        .expect("a TLS handshake and an answer");
    let code = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    (code, body)
}

#[test]
fn tls_only_with_certificates_made_once_and_reused_by_every_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("state");
    let mut server = Server::start_in(&data, "127.0.0.1:0", &["--no-controllers"]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    assert_eq!(
        mode(&data),
        0o700,
        "the data directory is the server's alone"
    );
    for file in [
        "kubeconfig",
        "swell.redb",
        "pki/ca.crt",
        "pki/ca.key",
        "pki/serving.crt",
        "pki/serving.key",
        "pki/admin.crt",
        "pki/admin.key",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let kubeconfig = read(&server.kubeconfig());
    for field in [
        "certificate-authority-data:",
        "client-certificate-data:",
        "client-key-data:",
        "user: swell-admin",
    ] {
        assert!(kubeconfig.contains(field), "{field} in {kubeconfig}");
    }
    // No plain HTTP: a plain request gets no HTTP answer from the API port.
    let plain = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{}/api", server.addr))
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&plain.stdout).to_string();
    assert!(
        !plain.status.success() || code == "000" || code == "400",
        "plain HTTP answered {code}"
    );
    for binary in [
        KUBECTL.to_string(),
        versioned_kubectl(27),
        versioned_kubectl(29),
        versioned_kubectl(33),
    ] {
        let who = server.kubectl(&binary).ok(&["auth", "whoami"]);
        assert!(
            who.contains("swell-admin") && who.contains("system:masters"),
            "{binary}: {who}"
        );
    }
    let (ca, serving) = (
        read(&data.join("pki/ca.crt")),
        read(&data.join("pki/serving.crt")),
    );
    assert!(server.stop());
    let again = Server::start_in(&data, "127.0.0.1:0", &["--no-controllers"]);
    assert_eq!(read(&data.join("pki/ca.crt")), ca, "the CA is kept");
    assert_eq!(
        read(&data.join("pki/serving.crt")),
        serving,
        "the serving certificate is kept"
    );
    let k = again.kubectl(KUBECTL);
    assert!(k.ok(&["get", "namespaces"]).contains("knative-serving"));
    // A new --tls-san makes a new serving certificate from the same CA.
    drop(again);
    let renamed = Server::start_in(
        &data,
        "127.0.0.1:0",
        &["--no-controllers", "--tls-san", "swell.example"],
    );
    assert_eq!(read(&data.join("pki/ca.crt")), ca);
    assert_ne!(read(&data.join("pki/serving.crt")), serving);
    renamed.kubectl(KUBECTL).ok(&["get", "ksvc"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_wrong_credentials_get_401_and_public_paths_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "s3cret,bob,1002,\"devs,ops\"\n").unwrap();
    let tokens_arg = tokens.display().to_string();
    let server = tokio::task::spawn_blocking(move || {
        Server::start_with(&["--no-controllers", "--token-auth-file", &tokens_arg])
    })
    .await
    .unwrap();
    let ca = read(&server.data_dir.join("pki/ca.crt"));
    let anonymous = http_with(&ca, None).build().unwrap();
    let api = format!("{}/api", server.url);

    let (code, body) = status_of(&anonymous, &api).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (401, Some("Unauthorized")),
        "{body}"
    );
    assert_eq!(body["kind"], "Status");
    for path in ["/version", "/healthz", "/livez", "/readyz"] {
        let resp = anonymous
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            200,
            "{path} is readable anonymously"
        );
    }
    let wrong_token = anonymous
        .get(&api)
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_token.status().as_u16(), 401);

    // A token from the file authenticates; RBAC still decides (bob has no binding).
    let review = anonymous
        .post(format!("{}/apis/authentication.k8s.io/v1/selfsubjectreviews", server.url))
        .bearer_auth("s3cret")
        .json(&serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}))
        .send()
        .await
        .unwrap();
    assert_eq!(review.status().as_u16(), 201);
    let review: serde_json::Value = review.json().await.unwrap();
    assert_eq!(review["status"]["userInfo"]["username"], "bob");
    assert_eq!(review["status"]["userInfo"]["uid"], "1002");
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        serde_json::json!(["devs", "ops", "system:authenticated"])
    );
    let bob = anonymous
        .get(format!("{}/api/v1/namespaces/default/secrets", server.url))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(bob.status().as_u16(), 403);
    let body: serde_json::Value = bob.json().await.unwrap();
    assert_eq!(
        body["message"],
        "secrets is forbidden: User \"bob\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
    );

    // A certificate from another CA, and an expired one from the right CA: 401.
    let (_, stranger) = own_ca("stranger-ca");
    let now = time::OffsetDateTime::now_utc();
    let (cert, key) = client_cert(&stranger, "mallory", now - time::Duration::hours(1), 1);
    let foreign = http_with(&ca, Some((&cert, &key))).build().unwrap();
    assert_eq!(
        status_of(&foreign, &api).await.0,
        401,
        "a certificate from another CA"
    );
    let swell_ca = Issuer::from_ca_cert_pem(
        &ca,
        KeyPair::from_pem(&read(&server.data_dir.join("pki/ca.key"))).unwrap(),
    )
    .unwrap();
    let (cert, key) = client_cert(&swell_ca, "swell-admin", now - time::Duration::days(10), 1);
    let expired = http_with(&ca, Some((&cert, &key))).build().unwrap();
    assert_eq!(
        status_of(&expired, &api).await.0,
        401,
        "an expired certificate"
    );
    // The server is unharmed and the admin still gets in.
    let admin = server.api_http().build().unwrap();
    assert_eq!(status_of(&admin, &api).await.0, 200);
}

#[test]
fn a_bad_token_file_line_stops_start_up_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "ok,alice,1\nbroken,bob\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_swell"))
        .args([
            "server",
            "--backend",
            "fake",
            "--api-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("state"))
        .arg("--token-auth-file")
        .arg(&tokens)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2: must have at least 3 columns (token, user name, user uid), found 2"),
        "{err}"
    );
}

#[test]
fn rbac_lets_alice_manage_services_in_her_namespace_and_nothing_else() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let admin = server.kubectl(KUBECTL);
    admin.ok(&["create", "namespace", "team-a"]);
    let alice = kubectl_as(&server, &dir, "alice", &["team"]);
    let who = alice.ok(&["auth", "whoami"]);
    assert!(who.contains("alice") && who.contains("team"), "{who}");

    let err = alice.fails(&["get", "ksvc", "-n", "team-a"]);
    assert!(
        err.contains("Error from server (Forbidden): services.serving.knative.dev is forbidden: User \"alice\" cannot list resource \"services\" in API group \"serving.knative.dev\" in the namespace \"team-a\""),
        "{err}"
    );
    assert_eq!(can_i(&alice, &["create", "ksvc", "-n", "team-a"]), "no");

    admin.ok(&[
        "create",
        "rolebinding",
        "alice-edit",
        "--clusterrole=edit",
        "--user=alice",
        "-n",
        "team-a",
    ]);
    assert_eq!(can_i(&alice, &["create", "ksvc", "-n", "team-a"]), "yes");
    assert_eq!(can_i(&alice, &["create", "ksvc", "-n", "default"]), "no");
    assert_eq!(
        can_i(&alice, &["create", "rolebindings", "-n", "team-a"]),
        "no"
    );
    let hello = manifest(
        &dir,
        "hello.yaml",
        &service_yaml("hello", "example.com/app:1"),
    );
    assert!(
        alice
            .ok(&["apply", "-n", "team-a", "-f", &hello])
            .contains("created")
    );
    assert!(alice.ok(&["get", "ksvc", "-n", "team-a"]).contains("hello"));
    alice.ok(&["delete", "ksvc", "hello", "-n", "team-a"]);
    assert!(
        alice
            .fails(&["apply", "-n", "default", "-f", &hello])
            .contains("forbidden")
    );
    assert!(alice.fails(&["get", "namespaces"]).contains("forbidden"));
    assert!(
        alice
            .fails(&[
                "create",
                "rolebinding",
                "me",
                "--clusterrole=admin",
                "--user=alice",
                "-n",
                "team-a"
            ])
            .contains("forbidden")
    );

    // resourceNames: bob may read one Service and no other.
    let bob = kubectl_as(&server, &dir, "bob", &[]);
    admin.ok(&[
        "create",
        "role",
        "one",
        "--verb=get",
        "--resource=services.serving.knative.dev",
        "--resource-name=hello",
        "-n",
        "team-a",
    ]);
    admin.ok(&[
        "create",
        "rolebinding",
        "bob-one",
        "--role=one",
        "--user=bob",
        "-n",
        "team-a",
    ]);
    assert_eq!(can_i(&bob, &["get", "ksvc/hello", "-n", "team-a"]), "yes");
    assert_eq!(can_i(&bob, &["get", "ksvc/other", "-n", "team-a"]), "no");
    assert_eq!(can_i(&bob, &["list", "ksvc", "-n", "team-a"]), "no");
    // nonResourceURLs: /metrics once a ClusterRole grants it.
    assert_eq!(can_i(&bob, &["get", "/metrics"]), "no");
    admin.ok(&[
        "create",
        "clusterrole",
        "metrics",
        "--verb=get",
        "--non-resource-url=/metrics",
    ]);
    admin.ok(&[
        "create",
        "clusterrolebinding",
        "bob-metrics",
        "--clusterrole=metrics",
        "--user=bob",
    ]);
    assert_eq!(can_i(&bob, &["get", "/metrics"]), "yes");
    assert!(bob.ok(&["get", "--raw", "/metrics"]).contains("# EOF"));

    // A namespace deleted takes its bindings along: the same name made again grants
    // alice nothing.
    admin.ok(&["delete", "namespace", "team-a"]);
    admin.ok(&["create", "namespace", "team-a"]);
    assert_eq!(can_i(&alice, &["create", "ksvc", "-n", "team-a"]), "no");
    assert!(
        admin
            .ok(&["get", "rolebindings", "-n", "team-a", "-o", "name"])
            .trim()
            .is_empty()
    );
}

#[test]
fn nobody_grants_more_than_they_hold() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let admin = server.kubectl(KUBECTL);
    admin.ok(&["create", "namespace", "team-a"]);
    admin.ok(&[
        "create",
        "rolebinding",
        "alice-admin",
        "--clusterrole=admin",
        "--user=alice",
        "-n",
        "team-a",
    ]);
    let alice = kubectl_as(&server, &dir, "alice", &[]);
    let err = alice.fails(&[
        "create",
        "role",
        "wide",
        "--verb=delete",
        "--resource=namespaces",
        "-n",
        "team-a",
    ]);
    assert!(
        err.contains("roles.rbac.authorization.k8s.io \"wide\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:")
            && err.contains("{APIGroups:[\"\"], Resources:[\"namespaces\"], Verbs:[\"delete\"]}"),
        "{err}"
    );
    let err = alice.fails(&[
        "create",
        "rolebinding",
        "up",
        "--clusterrole=cluster-admin",
        "--user=alice",
        "-n",
        "team-a",
    ]);
    assert!(
        err.contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    // What she holds she may hand on.
    alice.ok(&[
        "create",
        "rolebinding",
        "carol-view",
        "--clusterrole=view",
        "--user=carol",
        "-n",
        "team-a",
    ]);
    alice.ok(&[
        "create",
        "role",
        "cm-reader",
        "--verb=get",
        "--resource=configmaps",
        "-n",
        "team-a",
    ]);
    let roles = admin.ok(&["get", "roles,rolebindings", "-n", "team-a", "-o", "name"]);
    assert!(!roles.contains("wide") && !roles.contains("/up"), "{roles}");
    assert!(
        roles.contains("carol-view") && roles.contains("cm-reader"),
        "{roles}"
    );
}

#[test]
fn rbac_objects_that_do_not_validate_change_nothing() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let k = server.kubectl(KUBECTL);
    let bad_verb = manifest(
        &dir,
        "role.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: default}\nrules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  verbs: [gett]\n",
    );
    let err = k.fails(&["apply", "-f", &bad_verb]);
    assert!(
        err.contains("rules[0].verbs[0]: Unsupported value: \"gett\""),
        "{err}"
    );
    let no_ref = manifest(
        &dir,
        "binding.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: b, namespace: default}\nsubjects:\n- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}\n",
    );
    let err = k.fails(&["apply", "-f", &no_ref]);
    assert!(err.contains("roleRef"), "{err}");
    let none = k.run(&["get", "roles,rolebindings", "-n", "default", "-o", "name"]);
    assert!(
        String::from_utf8_lossy(&none.stdout).trim().is_empty(),
        "nothing was stored"
    );

    k.ok(&[
        "create",
        "rolebinding",
        "b",
        "--clusterrole=view",
        "--user=alice",
    ]);
    let err = k.fails(&[
        "patch",
        "rolebinding",
        "b",
        "--type",
        "merge",
        "-p",
        r#"{"roleRef":{"name":"edit"}}"#,
    ]);
    assert!(err.contains("cannot change roleRef"), "{err}");
    assert_eq!(
        k.ok(&["get", "rolebinding", "b", "-o", "jsonpath={.roleRef.name}"]),
        "view"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operators_own_certificates_replace_swells() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, ca) = own_ca("operator-ca");
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "api");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving = params.signed_by(&key, &ca).unwrap();
    let files = dir.path();
    std::fs::write(files.join("tls.crt"), serving.pem() + &ca_pem).unwrap();
    std::fs::write(files.join("tls.key"), key.serialize_pem()).unwrap();
    std::fs::write(files.join("clients.crt"), &ca_pem).unwrap();
    let arg = |f: &str| files.join(f).display().to_string();
    let (cert, key_file, clients) = (arg("tls.crt"), arg("tls.key"), arg("clients.crt"));
    let server = tokio::task::spawn_blocking(move || {
        Server::start_with(&[
            "--no-controllers",
            "--tls-cert-file",
            &cert,
            "--tls-private-key-file",
            &key_file,
            "--client-ca-file",
            &clients,
        ])
    })
    .await
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut dave = CertificateParams::new(Vec::<String>::new()).unwrap();
    dave.distinguished_name.push(DnType::CommonName, "dave");
    dave.distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    dave.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    dave.not_before = now - time::Duration::hours(1);
    let dave_key = KeyPair::generate().unwrap();
    let dave = dave.signed_by(&dave_key, &ca).unwrap();
    let api = format!("{}/api", server.url);
    let as_dave = http_with(&ca_pem, Some((&dave.pem(), &dave_key.serialize_pem())))
        .build()
        .unwrap();
    assert_eq!(
        status_of(&as_dave, &api).await.0,
        200,
        "a client of the operator's CA"
    );
    // A certificate from Swell's own CA is not from the client CA in force.
    let pki = server.data_dir.join("pki");
    let swell_ca = Issuer::from_ca_cert_pem(
        &read(&pki.join("ca.crt")),
        KeyPair::from_pem(&read(&pki.join("ca.key"))).unwrap(),
    )
    .unwrap();
    let (cert, key) = client_cert(&swell_ca, "swell-admin", now - time::Duration::hours(1), 1);
    let swell_admin = http_with(&ca_pem, Some((&cert, &key))).build().unwrap();
    assert!(
        !pki.join("admin.crt").exists(),
        "no admin certificate from a CA the server does not trust"
    );
    assert_eq!(status_of(&swell_admin, &api).await.0, 401);
    // Clients that trust only Swell's CA do not trust the operator's serving certificate.
    let trusting_swell = http_with(&read(&pki.join("ca.crt")), None).build().unwrap();
    assert!(trusting_swell.get(&api).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ingress_never_serves_the_api() {
    let server = tokio::task::spawn_blocking(Server::start).await.unwrap();
    let resp = common::get_url(format!(
        "http://{}/api/v1/namespaces/default/secrets",
        server.ingress
    ))
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let body = resp.text().await.unwrap();
    assert!(!body.contains("SecretList"), "{body}");
}

#[test]
fn kubeconfig_create_issues_a_certificate_for_the_user_groups_namespace_and_time_asked() {
    let server = Server::start();
    let out = Command::new(env!("CARGO_BIN_EXE_swell"))
        .args([
            "kubeconfig",
            "create",
            "--user",
            "erin",
            "--group",
            "qa",
            "--group",
            "ops",
        ])
        .args(["--namespace", "team-q", "--expiration", "24h"])
        .env("SWELL_DATA_DIR", &server.data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("erin.kubeconfig");
    std::fs::write(&path, &yaml).unwrap();
    let erin = Kubectl {
        binary: KUBECTL.to_string(),
        kubeconfig: path,
        cache: tempfile::tempdir().unwrap(),
    };
    let who = erin.ok(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.groups}"]);
    assert_eq!(who, r#"["qa","ops","system:authenticated"]"#);
    let config = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    assert_eq!(
        config.contexts[0]
            .context
            .as_ref()
            .unwrap()
            .namespace
            .as_deref(),
        Some("team-q")
    );
    assert_eq!(
        config.clusters[0]
            .cluster
            .as_ref()
            .unwrap()
            .server
            .as_deref(),
        Some(server.url.as_str())
    );
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(
            config.auth_infos[0]
                .auth_info
                .as_ref()
                .unwrap()
                .client_certificate_data
                .as_ref()
                .unwrap(),
        )
        .unwrap();
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let subject = cert.subject().to_string();
    assert!(
        subject.contains("CN=erin") && subject.contains("O=qa") && subject.contains("O=ops"),
        "{subject}"
    );
    let lifetime =
        cert.validity().not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (23 * 3600..=24 * 3600).contains(&lifetime),
        "valid for {lifetime} s"
    );

    let bad = Command::new(env!("CARGO_BIN_EXE_swell"))
        .args([
            "kubeconfig",
            "create",
            "--user",
            "erin",
            "--expiration",
            "1m",
        ])
        .env("SWELL_DATA_DIR", &server.data_dir)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("too short"));
}

#[test]
fn watch_is_a_verb_of_its_own() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let admin = server.kubectl(KUBECTL);
    admin.ok(&[
        "create",
        "role",
        "lister",
        "--verb=get,list",
        "--resource=services.serving.knative.dev",
    ]);
    admin.ok(&[
        "create",
        "rolebinding",
        "frank-lister",
        "--role=lister",
        "--user=frank",
    ]);
    let frank = kubectl_as(&server, &dir, "frank", &[]);
    frank.ok(&["get", "ksvc"]);
    let err = frank.fails(&["get", "ksvc", "-w", "--request-timeout=5s"]);
    assert!(err.contains("cannot watch resource \"services\""), "{err}");
    assert_eq!(can_i(&frank, &["watch", "ksvc"]), "no");
    assert_eq!(can_i(&frank, &["patch", "ksvc"]), "no");
    assert_eq!(
        can_i(&frank, &["update", "ksvc", "--subresource=status"]),
        "no"
    );
    admin.ok(&[
        "create",
        "role",
        "status-writer",
        "--verb=patch",
        "--resource=services.serving.knative.dev/status",
    ]);
    admin.ok(&[
        "create",
        "rolebinding",
        "frank-status",
        "--role=status-writer",
        "--user=frank",
    ]);
    assert_eq!(
        can_i(&frank, &["patch", "ksvc", "--subresource=status"]),
        "yes"
    );
    assert_eq!(can_i(&frank, &["patch", "ksvc"]), "no");
}
