//! `jamjet dev` over HTTPS and mTLS, with certificates this test makes
//! (rcgen): a CA, a server certificate for 127.0.0.1 and localhost, client
//! certificates from that CA and from another. The real binary serves; a
//! reqwest client, the crate's [`jamjet::client::Client`], the `jamjet`
//! CLI and a workflow's `type: http` node (the nodes' transport, the same
//! client the `agent` node uses) call it. Bad certificate files stop
//! `jamjet dev` before it opens anything.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::{Value, json};
use support::dev::DevServer;
use support::{OutputBounded, TWO_STEPS, jamjet};

/// A CA that issues server and client certificates into a folder.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
    name: String,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join(format!("{name}-ca.pem")), issuer.pem()).unwrap();
        Ca { issuer, dir: dir.to_path_buf(), name: name.to_string() }
    }

    fn pem(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// A certificate with CN `cn` and these SANs: (cert.pem, key.pem).
    fn issue(&self, cn: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (self.dir.join(format!("{cn}.pem")), self.dir.join(format!("{cn}-key.pem")));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A reqwest client trusting `ca`, presenting `identity` (cert, key) if given.
fn client(ca: &Path, identity: Option<&(PathBuf, PathBuf)>) -> reqwest::Client {
    let tls = jamjet::tls::ClientTls {
        ca_cert: Some(ca.to_path_buf()),
        client_cert: identity.map(|i| i.0.clone()),
        client_key: identity.map(|i| i.1.clone()),
    };
    tls.apply(reqwest::Client::builder().timeout(Duration::from_secs(30))).unwrap().build().unwrap()
}

/// `(status, JSON body)`, or the transport error's whole chain.
async fn get(http: &reqwest::Client, url: &str) -> Result<(u16, Value), String> {
    send(http.get(url)).await
}

async fn send(req: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
    match req.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let body = res.bytes().await.map_err(|e| chain(&e))?;
            Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
        }
        Err(e) => Err(chain(&e)),
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

async fn post_yaml(http: &reqwest::Client, url: &str, yaml: &str) -> Result<(u16, Value), String> {
    send(http.post(format!("{url}/workflows")).header("content-type", "application/yaml").body(yaml.to_string())).await
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_api_to_clients_trusting_the_ca_and_tells_plain_http_to_use_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "main");
    let (cert, key) = ca.issue("server", &["localhost", "127.0.0.1"]);
    let server = DevServer::start(&dir.path().join("data"), &["--tls-cert", s(&cert), "--tls-key", s(&key)]);
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);

    let trusting = client(&ca.pem(), None);
    let (status, health) = get(&trusting, &format!("{}/health", server.url)).await.unwrap();
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")), "{health}");
    let (status, _) = post_yaml(&trusting, &server.url, TWO_STEPS).await.unwrap();
    assert_eq!(status, 201);
    let localhost = server.url.replace("127.0.0.1", "localhost");
    let (status, list) = get(&trusting, &format!("{localhost}/workflows")).await.unwrap();
    assert_eq!(status, 200, "{list}");

    // The rest of the listener: metrics, the agent card (its URL says https).
    let (status, _) = get(&trusting, &format!("{}/metrics", server.url)).await.unwrap();
    assert_eq!(status, 200);
    let (status, card) = get(&trusting, &format!("{}/.well-known/agent-card.json", server.url)).await.unwrap();
    assert_eq!(status, 200, "{card}");
    assert!(card.to_string().contains(&server.url), "{card}");

    // The crate's own client, with the same CA.
    let tls = jamjet::tls::ClientTls { ca_cert: Some(ca.pem()), ..Default::default() };
    let api = jamjet::client::Client::with_tls(&server.url, &tls).unwrap();
    let workflows = api.workflows().await.unwrap();
    assert!(workflows.iter().any(|w| w.workflow_id == "two"), "{workflows:?}");

    // Without the CA: the system's roots do not know it.
    let stranger = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let refused = get(&stranger, &format!("{}/health", server.url)).await.unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "{refused}");

    // It asks for no client certificate, so a failure is never blamed on one.
    let parsed = reqwest::Url::parse(&server.url).unwrap();
    assert!(!jamjet::tls::asks_for_certificate("127.0.0.1", parsed.port().unwrap()).await);
    assert_eq!(jamjet::tls::certificate_hint(&parsed, "connection was not ready", false).await, None);

    // Plain HTTP to the HTTPS port: a 400 that says what to do.
    let plain = server.url.replace("https://", "http://");
    let (status, body) = get(&stranger, &format!("{plain}/health")).await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "https_required", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("use {}", server.url)), "{message}");
}

/// A `jamjet dev` with `--client-ca` and a keys file mapping `ops` to
/// everything and `dashboard` to reading; `ca`'s certificates and the
/// server's are in `dir`.
fn mtls_server(dir: &Path, ca: &Ca, extra_keys: &str) -> DevServer {
    let (cert, key) = ca.issue("server", &["localhost", "127.0.0.1"]);
    let keys = dir.join("keys");
    std::fs::write(&keys, format!("cert:ops all\ncert:dashboard.example read  # a SAN\n{extra_keys}")).unwrap();
    let ca_pem = ca.pem();
    let args = ["--tls-cert", s(&cert), "--tls-key", s(&key), "--client-ca", s(&ca_pem), "--api-keys-file", s(&keys)];
    DevServer::start(&dir.join("data"), &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_admits_the_ca_s_clients_and_gives_each_its_mapped_access() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "main");
    let other = Ca::new(dir.path(), "other");
    let (reader_key, reader_line) = jamjet::server::auth::new_key().unwrap();
    let server = mtls_server(dir.path(), &ca, &format!("{reader_line} read\n"));
    let url = server.url.clone();

    // No certificate, or one another CA signed: refused at the handshake.
    let anonymous = client(&ca.pem(), None);
    let e = get(&anonymous, &format!("{url}/health")).await.unwrap_err();
    // Under TLS 1.3 the refusal's alert may reach a client only after it
    // gave up on the connection ("connection was not ready"): the hint
    // asks the server, and names the alert either way.
    let parsed = reqwest::Url::parse(&url).unwrap();
    let hint = jamjet::tls::certificate_hint(&parsed, &e, false).await.unwrap_or_default();
    assert!(hint.contains("CertificateRequired") && hint.contains("--client-cert"), "{e}");
    assert!(jamjet::tls::asks_for_certificate("127.0.0.1", parsed.port().unwrap()).await);
    assert_eq!(jamjet::tls::certificate_hint(&parsed, "connection was not ready", true).await, None);
    let forged = other.issue("ops", &[]);
    let e = get(&client(&ca.pem(), Some(&forged)), &format!("{url}/health")).await.unwrap_err();
    assert!(e.contains("UnknownCA"), "{e}");

    // `ops` may do everything.
    let ops = client(&ca.pem(), Some(&ca.issue("ops", &[])));
    let (status, body) = post_yaml(&ops, &url, TWO_STEPS).await.unwrap();
    assert_eq!(status, 201, "{body}");
    let (status, run) =
        send(ops.post(format!("{url}/executions")).json(&json!({"workflow_id": "two", "input": {}}))).await.unwrap();
    assert!(status == 201 || status == 200, "{status} {run}");

    // A certificate whose SAN maps to `read`: it reads, it does not start.
    let dashboard = client(&ca.pem(), Some(&ca.issue("grafana", &["dashboard.example"])));
    let (status, list) = get(&dashboard, &format!("{url}/executions")).await.unwrap();
    assert_eq!(status, 200, "{list}");
    let (status, body) =
        send(dashboard.post(format!("{url}/executions")).json(&json!({"workflow_id": "two", "input": {}})))
            .await
            .unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("dashboard.example") && message.contains("may only read"), "{message}");
    let (status, _) = post_yaml(&dashboard, &url, TWO_STEPS).await.unwrap();
    assert_eq!(status, 403);

    // A certificate of the CA that no line names: refused, naming it.
    let stranger = client(&ca.pem(), Some(&ca.issue("stranger", &["stranger.example"])));
    let (status, body) = get(&stranger, &format!("{url}/executions")).await.unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("CN=stranger") && message.contains("stranger.example"), "{message}");
    assert!(message.contains("cert:NAME") && message.contains("API key"), "{message}");

    // An API key goes with the certificate and decides: this one reads only.
    let (status, _) = send(stranger.get(format!("{url}/executions")).bearer_auth(&reader_key)).await.unwrap();
    assert_eq!(status, 200);
    let (status, body) =
        send(stranger.post(format!("{url}/executions")).bearer_auth(&reader_key).json(&json!({"workflow_id": "two"})))
            .await
            .unwrap();
    assert_eq!(status, 403, "{body}");
    let (status, _) = send(stranger.get(format!("{url}/executions")).bearer_auth("jj_wrong")).await.unwrap();
    assert_eq!(status, 401);
}

#[test]
fn the_cli_and_a_workflow_s_http_node_go_through_mtls_with_their_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "main");
    let server = mtls_server(dir.path(), &ca, "");
    let data = dir.path().join("data");
    let wf = support::workflow_file(dir.path(), "two.yaml", TWO_STEPS);
    let (cert, key) = ca.issue("ops", &[]);
    let ca_pem = ca.pem();

    // Flags.
    let out = jamjet()
        .env_remove("JAMJET_SERVER")
        .arg("--data-dir")
        .arg(&data)
        .args(["run", &wf, "--json", "--server", &server.url])
        .args(["--ca-cert", s(&ca.pem()), "--client-cert", s(&cert), "--client-key", s(&key)])
        .output_bounded();
    assert!(out.status.success(), "{}", stderr(&out));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["status"], "completed", "{run}");

    // The same through the environment.
    let env = [
        ("JAMJET_SERVER", server.url.as_str()),
        ("JAMJET_CA_CERT", s(&ca_pem)),
        ("JAMJET_CLIENT_CERT", s(&cert)),
        ("JAMJET_CLIENT_KEY", s(&key)),
    ];
    let out = jamjet().envs(env).arg("--data-dir").arg(&data).args(["executions", "--json"]).output_bounded();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(run["id"].as_str().unwrap()));

    // Without a client certificate: a clear failure, nothing run.
    let out = jamjet()
        .env_remove("JAMJET_SERVER")
        .arg("--data-dir")
        .arg(&data)
        .args(["executions", "--server", &server.url, "--ca-cert", s(&ca.pem())])
        .output_bounded();
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains(&format!("cannot reach jamjet server at {}", server.url)), "{e}");
    assert!(e.contains("CertificateRequired") && e.contains("--client-cert"), "{e}");
    // A certificate without its key.
    let out = jamjet()
        .env_remove("JAMJET_SERVER")
        .arg("--data-dir")
        .arg(&data)
        .args(["executions", "--server", &server.url, "--client-cert", s(&cert)])
        .output_bounded();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--client-key (JAMJET_CLIENT_KEY) is not"), "{}", stderr(&out));

    // A workflow's http node (the nodes' client, which `agent` nodes share)
    // reads the server's executions with the certificate of the environment.
    let call = support::workflow_file(
        dir.path(),
        "call.yaml",
        &format!(
            "id: call\nstate_schema: {{ out: any }}\nnodes:\n  call:\n    type: http\n    url: {}/executions\n    output_key: out\n",
            server.url
        ),
    );
    let own = dir.path().join("own");
    let node_env = [("JAMJET_CA_CERT", s(&ca_pem)), ("JAMJET_CLIENT_CERT", s(&cert)), ("JAMJET_CLIENT_KEY", s(&key))];
    let out = jamjet()
        .env_remove("JAMJET_SERVER")
        .envs(node_env)
        .arg("--data-dir")
        .arg(&own)
        .args(["run", &call, "--json"])
        .output_bounded();
    assert!(out.status.success(), "{}", stderr(&out));
    let called: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(called["status"], "completed", "{called}");
    assert!(called["state"]["out"].to_string().contains(run["id"].as_str().unwrap()), "{called}");
    // Without the certificate the node's call fails.
    let out = jamjet()
        .env_remove("JAMJET_SERVER")
        .env("JAMJET_CA_CERT", ca.pem())
        .arg("--data-dir")
        .arg(dir.path().join("own2"))
        .args(["run", &call, "--json"])
        .output_bounded();
    let failed = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && failed.contains("CertificateRequired"), "{failed}");
}

/// `jamjet dev ARGS` that must fail before it starts: its stderr.
fn refused(dir: &Path, args: &[&str]) -> String {
    let data = dir.join("refused-data");
    let out = jamjet()
        .env_remove("JAMJET_API_KEYS")
        .arg("--data-dir")
        .arg(&data)
        .args(["dev", "--bind", "127.0.0.1:0"])
        .args(args)
        .output_bounded();
    assert!(!out.status.success(), "jamjet dev {args:?} started: {}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stdout.is_empty(), "it printed {}", String::from_utf8_lossy(&out.stdout));
    assert!(!data.exists(), "jamjet dev {args:?} opened its data dir");
    stderr(&out)
}

#[test]
fn bad_tls_files_stop_jamjet_dev_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "main");
    let (cert, key) = ca.issue("server", &["localhost"]);
    let (_, other_key) = ca.issue("other", &["localhost"]);
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a certificate\n").unwrap();

    let e = refused(dir.path(), &["--tls-cert", s(&notes), "--tls-key", s(&key)]);
    assert!(e.contains("--tls-cert") && e.contains("notes.txt") && e.contains("no PEM certificate"), "{e}");
    let e = refused(dir.path(), &["--tls-cert", s(&cert), "--tls-key", s(&cert)]);
    assert!(e.contains("--tls-key") && e.contains("no PEM private key") && e.contains("CERTIFICATE"), "{e}");
    let e = refused(dir.path(), &["--tls-cert", s(&cert), "--tls-key", s(&other_key)]);
    assert!(e.contains("does not belong to the certificate") && e.contains("other-key.pem"), "{e}");
    let e = refused(dir.path(), &["--tls-cert", s(&dir.path().join("gone.pem")), "--tls-key", s(&key)]);
    assert!(e.contains("cannot read --tls-cert") && e.contains("gone.pem"), "{e}");
    let e = refused(dir.path(), &["--tls-cert", s(&cert), "--tls-key", s(&key), "--client-ca", s(&notes)]);
    assert!(e.contains("--client-ca") && e.contains("notes.txt"), "{e}");
    let e = refused(dir.path(), &["--tls-cert", s(&cert), "--tls-key", s(&key), "--client-ca", s(&ca.pem())]);
    assert!(e.contains("cert:NAME all") && e.contains("did not start"), "{e}");
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "cert:ops all\n").unwrap();
    let e = refused(dir.path(), &["--tls-cert", s(&cert), "--tls-key", s(&key), "--api-keys-file", s(&keys)]);
    assert!(e.contains("`cert:` lines") && e.contains("--client-ca"), "{e}");
    let e = refused(dir.path(), &["--tls-cert", s(&cert)]);
    assert!(e.contains("--tls-key"), "{e}");
}
