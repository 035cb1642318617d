//! The three emulators, each started as its own child process on 127.0.0.1 for one test.

use std::process::Command;
use std::time::Duration;

use super::process::PeerProcess;
use super::{free_port, peer_path, peer_script, peers_dir, TEST_ACCESS_KEY_ID, TEST_REGION};

/// Generous: the tests run several peers at once on 2 shared cores next to cargo.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The account id moto puts into every ARN.
pub const MOTO_ACCOUNT_ID: &str = "123456789012";

fn node_command(script: &str) -> Command {
    peer_path("node/node_modules/kinesalite/package.json");
    let mut cmd = Command::new("node");
    cmd.arg(peer_script(script))
        .env("TRIBUTARY_PEERS_DIR", peers_dir());
    cmd
}

/// kinesalite: the faithful Kinesis data path (sequence numbers, iterators, split/merge).
/// Streams go ACTIVE after 50 ms; up to 1000 open shards. Never send `NextToken` to
/// ListShards here: it crashes the process (see [`Kinesalite::is_running`]).
pub struct Kinesalite {
    process: PeerProcess,
}

impl Kinesalite {
    pub async fn start() -> Kinesalite {
        let process = PeerProcess::start("kinesalite", "/", START_TIMEOUT, |port| {
            let mut cmd = node_command("kinesalite.js");
            cmd.arg(port.to_string());
            cmd
        })
        .await;
        Kinesalite { process }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        self.process.endpoint()
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}

/// kinesis-local (kinesis-mock): the faithful control plane (ListShards paging with
/// NextToken, ShardFilter, StreamARN, UpdateShardCount, consumers, ChildShards). Slow on the
/// data path: keep its tests small.
///
/// kinesis-mock hard-codes 0.0.0.0; `scripts/peers/kinesis-local.js` patches Node's
/// `net.Server.prototype.listen` so that both its plain and TLS listeners bind 127.0.0.1.
pub struct KinesisLocal {
    process: PeerProcess,
}

impl KinesisLocal {
    pub async fn start() -> KinesisLocal {
        peer_path("node/node_modules/kinesis-local/main.js");
        let process = PeerProcess::start("kinesis-local", "/", START_TIMEOUT, |port| {
            let mut cmd = node_command("kinesis-local.js");
            cmd.arg(port.to_string()).arg(free_port().to_string());
            cmd
        })
        .await;
        KinesisLocal { process }
    }

    /// `http://127.0.0.1:PORT` (the plain-HTTP listener).
    pub fn endpoint(&self) -> String {
        self.process.endpoint()
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}

/// moto: STS and IAM (with enforcement), plus a Kinesis that is good enough for permission
/// checks (single writer, no resharding). IAM enforcement is global per moto server, which is
/// why each test gets its own.
pub struct Moto {
    process: PeerProcess,
    http: reqwest::Client,
}

impl Moto {
    pub async fn start() -> Moto {
        let python = peer_path("venv/bin/python");
        let process = PeerProcess::start("moto", "/moto-api/", START_TIMEOUT, |port| {
            let mut cmd = Command::new(&python);
            cmd.arg(peer_script("run_moto.py"))
                .arg(port.to_string())
                .env("PYTHONUNBUFFERED", "1");
            cmd
        })
        .await;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("reqwest client");
        Moto { process, http }
    }

    /// `http://127.0.0.1:PORT` (every AWS service moto emulates answers here).
    pub fn endpoint(&self) -> String {
        self.process.endpoint()
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Clears all state and turns IAM enforcement off.
    pub async fn reset(&self) {
        self.reset_auth("inf").await;
        self.moto_api("reset", None).await;
    }

    /// From now on every AWS call is checked: signatures, keys and the caller's policies.
    /// Create users and roles first ([`Moto::create_user_with_policy`], [`Moto::create_role`]):
    /// their unsigned IAM calls are denied once this is on.
    pub async fn enable_iam_enforcement(&self) {
        self.reset_auth("0").await;
    }

    pub async fn disable_iam_enforcement(&self) {
        self.reset_auth("inf").await;
    }

    /// Creates an IAM user with one inline policy and an access key: `(access_key_id, secret)`.
    /// Moto checks every Kinesis call against Resource "*": scope policies with `"Resource": "*"`.
    pub async fn create_user_with_policy(&self, user: &str, policy_json: &str) -> (String, String) {
        self.iam("CreateUser", &[("UserName", user)]).await;
        self.iam(
            "PutUserPolicy",
            &[
                ("UserName", user),
                ("PolicyName", &format!("{user}-policy")),
                ("PolicyDocument", policy_json),
            ],
        )
        .await;
        let body = self.iam("CreateAccessKey", &[("UserName", user)]).await;
        (
            xml_value(&body, "AccessKeyId"),
            xml_value(&body, "SecretAccessKey"),
        )
    }

    /// Creates a role with a trust policy and one inline permission policy; returns its ARN.
    /// Moto enforces the trust policy's exact-ARN principal and a wrong ExternalId (not a missing
    /// one, and `arn:aws:iam::ACCOUNT:root` principals are wrongly denied).
    pub async fn create_role(
        &self,
        role_name: &str,
        trust_policy_json: &str,
        permission_policy_json: &str,
    ) -> String {
        let body = self
            .iam(
                "CreateRole",
                &[
                    ("RoleName", role_name),
                    ("AssumeRolePolicyDocument", trust_policy_json),
                ],
            )
            .await;
        self.iam(
            "PutRolePolicy",
            &[
                ("RoleName", role_name),
                ("PolicyName", &format!("{role_name}-policy")),
                ("PolicyDocument", permission_policy_json),
            ],
        )
        .await;
        xml_value(&body, "Arn")
    }

    /// `arn:aws:iam::123456789012:user/NAME`
    pub fn user_arn(&self, user: &str) -> String {
        format!("arn:aws:iam::{MOTO_ACCOUNT_ID}:user/{user}")
    }

    /// One IAM Query API call (unsigned; fine while enforcement is off). Returns the XML body,
    /// panics on a non-2xx answer.
    pub async fn iam(&self, action: &str, params: &[(&str, &str)]) -> String {
        let mut form: Vec<(&str, &str)> = vec![("Action", action), ("Version", "2010-05-08")];
        form.extend_from_slice(params);
        // moto routes a request to a service by the credential scope of its Authorization
        // header; the signature itself is only checked once enforcement is on.
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={TEST_ACCESS_KEY_ID}/20240101/{TEST_REGION}/iam/aws4_request, SignedHeaders=host, Signature=0"
        );
        let resp = self
            .http
            .post(format!("{}/", self.endpoint()))
            .header("Authorization", auth)
            .form(&form)
            .send()
            .await
            .unwrap_or_err_panic(action);
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "moto IAM {action} failed with {status}: {body}"
        );
        body
    }

    async fn reset_auth(&self, body: &'static str) {
        self.moto_api("reset-auth", Some(body)).await;
    }

    async fn moto_api(&self, what: &str, text_body: Option<&'static str>) {
        let mut req = self
            .http
            .post(format!("{}/moto-api/{what}", self.endpoint()));
        if let Some(body) = text_body {
            req = req.header("Content-Type", "text/plain").body(body);
        }
        let resp = req.send().await.unwrap_or_err_panic(what);
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "moto /moto-api/{what} failed with {status}: {text}"
        );
    }
}

trait SendResult {
    fn unwrap_or_err_panic(self, what: &str) -> reqwest::Response;
}

impl SendResult for Result<reqwest::Response, reqwest::Error> {
    fn unwrap_or_err_panic(self, what: &str) -> reqwest::Response {
        self.unwrap_or_else(|e| panic!("moto {what}: request failed: {e}"))
    }
}

/// The text of the first `<tag>…</tag>` in an XML body.
fn xml_value(body: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in moto response: {body}"))
        + open.len();
    let end = body[start..]
        .find(&close)
        .unwrap_or_else(|| panic!("no </{tag}> in moto response: {body}"));
    body[start..start + end].to_string()
}
