//! Bad input gets a clear `Status` and changes nothing.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::Server;
use serde_json::{Value, json};

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value, Vec<String>) {
        let len = body.len();
        let resp = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} with {len} bytes: {e:?}"));
        let code = resp.status().as_u16();
        let warnings = resp
            .headers()
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let body = resp.json().await.unwrap_or(Value::Null);
        (code, body, warnings)
    }

    async fn post(&self, body: &Value, query: &str) -> (u16, Value, Vec<String>) {
        self.send(
            reqwest::Method::POST,
            &format!("{SERVICES}{query}"),
            "application/json",
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    async fn resource_version(&self) -> String {
        let (_, list, _) = self
            .send(reqwest::Method::GET, SERVICES, "application/json", vec![])
            .await;
        list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";

fn service(name: &str, containers: Value) -> Value {
    json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"template": {"spec": {"containers": containers}}}})
}

fn assert_status(code: u16, body: &Value, want_code: u16, want_reason: &str) {
    assert_eq!(code, want_code, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["status"], "Failure");
    assert_eq!(body["reason"], want_reason, "{body}");
    assert_eq!(body["code"], want_code);
    assert!(!body["message"].as_str().unwrap_or("").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_and_change_nothing() {
    let server = tokio::task::spawn_blocking(Server::start).await.unwrap();
    // One connection per request: HTTP lets the server close a connection after a 413.
    let http = server.api_http().pool_max_idle_per_host(0).build().unwrap();
    let api = Api {
        base: server.url.clone(),
        http,
    };
    let good = [json!({"image": "example.com/app:1"})];
    let (code, stored, _) = api.post(&service("keep", json!(good)), "").await;
    assert_eq!(code, 201);
    let rv = api.resource_version().await;

    let (c, b, _) = api
        .send(
            reqwest::Method::POST,
            SERVICES,
            "application/json",
            b"{\"apiVersion\": ".to_vec(),
        )
        .await;
    assert_status(c, &b, 400, "BadRequest");

    let (c, b, _) = api
        .send(
            reqwest::Method::PATCH,
            &format!("{SERVICES}/keep?fieldManager=t"),
            "application/apply-patch+yaml",
            b"spec: [unclosed".to_vec(),
        )
        .await;
    assert_status(c, &b, 400, "BadRequest");

    let mut unknown = service("typo", json!(good));
    unknown["spec"]["foo"] = json!(1);
    let (c, b, _) = api.post(&unknown, "?fieldValidation=Strict").await;
    assert_status(c, &b, 400, "BadRequest");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.foo\""),
        "{b}"
    );

    let (c, b, _) = api.post(&service("Hello_World", json!(good)), "").await;
    assert_status(c, &b, 422, "Invalid");
    assert_eq!(b["details"]["causes"][0]["field"], "metadata.name");

    let (c, b, _) = api
        .post(
            &service(
                "port",
                json!([{"image": "x", "ports": [{"containerPort": 8013}]}]),
            ),
            "",
        )
        .await;
    assert_status(c, &b, 422, "Invalid");
    assert_eq!(
        b["details"]["causes"][0]["field"],
        "spec.template.spec.containers[0].ports.containerPort"
    );

    let (c, b, _) = api
        .post(
            &service(
                "env",
                json!([{"image": "x", "env": [{"name": "K_REVISION", "value": "y"}]}]),
            ),
            "",
        )
        .await;
    assert_status(c, &b, 422, "Invalid");

    let mut split = service("split", json!(good));
    split["spec"]["traffic"] = json!([{"latestRevision": true, "percent": 60}, {"revisionName": "split-00001", "percent": 39}]);
    let (c, b, _) = api.post(&split, "").await;
    assert_status(c, &b, 422, "Invalid");
    assert_eq!(b["details"]["causes"][0]["field"], "spec.traffic");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("Traffic targets sum to 99, want 100"),
        "{b}"
    );

    let mut stale = stored.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    stale["spec"]["template"]["spec"]["containerConcurrency"] = json!(3);
    let (c, b, _) = api
        .send(
            reqwest::Method::PUT,
            &format!("{SERVICES}/keep"),
            "application/json",
            serde_json::to_vec(&stale).unwrap(),
        )
        .await;
    assert_status(c, &b, 409, "Conflict");

    let mut huge = service("huge", json!(good));
    huge["metadata"]["annotations"] = json!({"big": "x".repeat(4 * 1024 * 1024)});
    let (c, b, _) = api.post(&huge, "").await;
    assert_status(c, &b, 413, "RequestEntityTooLarge");

    let deep = format!(
        "{{\"metadata\":{{\"name\":\"deep\"}},\"spec\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (c, b, _) = api
        .send(
            reqwest::Method::POST,
            SERVICES,
            "application/json",
            deep.into_bytes(),
        )
        .await;
    assert_status(c, &b, 400, "BadRequest");

    let deep_yaml = format!(
        "metadata: {{name: keep}}\nspec: {}{}",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let (c, b, _) = api
        .send(
            reqwest::Method::PATCH,
            &format!("{SERVICES}/keep?fieldManager=t"),
            "application/apply-patch+yaml",
            deep_yaml.into_bytes(),
        )
        .await;
    assert_status(c, &b, 400, "BadRequest");

    let mut wrong_kind = service("kind", json!(good));
    wrong_kind["kind"] = json!("Route");
    let (c, b, _) = api.post(&wrong_kind, "").await;
    assert_status(c, &b, 400, "BadRequest");

    let mut other_ns = service("ns", json!(good));
    other_ns["metadata"]["namespace"] = json!("elsewhere");
    let (c, b, _) = api.post(&other_ns, "").await;
    assert_status(c, &b, 400, "BadRequest");

    let (c, b, _) = api
        .send(
            reqwest::Method::POST,
            "/apis/serving.knative.dev/v1/namespaces/nowhere/services",
            "application/json",
            serde_json::to_vec(&service("x", json!(good))).unwrap(),
        )
        .await;
    assert_status(c, &b, 404, "NotFound");

    let (c, b, _) = api.send(reqwest::Method::PATCH, &format!("{SERVICES}/keep"), "application/json-patch+json", br#"[{"op":"replace","path":"/spec/template/spec/containers/0/ports","value":[{"containerPort":9091}]}]"#.to_vec()).await;
    assert_status(c, &b, 422, "Invalid");

    let (c, b, _) = api
        .send(
            reqwest::Method::GET,
            "/apis/serving.knative.dev/v1/widgets",
            "application/json",
            vec![],
        )
        .await;
    assert_status(c, &b, 404, "NotFound");

    let (c, b, _) = api
        .send(
            reqwest::Method::GET,
            &format!("{SERVICES}?labelSelector=bad%20key%3Dv"),
            "application/json",
            vec![],
        )
        .await;
    assert_status(c, &b, 400, "BadRequest");

    assert_eq!(
        api.resource_version().await,
        rv,
        "no refused request wrote anything"
    );
    let (_, list, _) = api
        .send(reqwest::Method::GET, SERVICES, "application/json", vec![])
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0], stored, "the stored object is untouched");

    let mut warned = service("warned", json!(good));
    warned["spec"]["bar"] = json!(true);
    let (c, b, warnings) = api.post(&warned, "").await;
    assert_eq!(c, 201, "{b}");
    assert_eq!(warnings, ["299 - \"unknown field \\\"spec.bar\\\"\""]);
    assert!(b["spec"].get("bar").is_none(), "unknown fields are pruned");
}
