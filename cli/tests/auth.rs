//! `baton auth ...` through the built binary against a real Baton (in process, on the backend
//! `BATON_TEST_BACKEND` names): keys created, listed, used and revoked; a viewer refused a run;
//! the first key written straight into a fresh database; `auth login` saving a token the next
//! command finds; and no token ever shown on stderr when a call fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use baton_testkit::{Role, StackOptions, TestBackend, TestStack};
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const HELLO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello.yaml");
const LOGIN_HINT: &str = "hint: pass --token, set BATON_TOKEN, or run `baton auth login`\n";

/// What one `baton` invocation did.
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout\n{}--- stderr\n{}---",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Out {
    #[track_caller]
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "{self}");
        self
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

/// How to run `baton`: which token it is given and which credentials file it uses.
struct Baton {
    addr: String,
    token: Option<String>,
    credentials: PathBuf,
}

impl Baton {
    fn new(addr: &str, token: Option<&str>, credentials: &Path) -> Self {
        Self {
            addr: addr.to_owned(),
            token: token.map(str::to_owned),
            credentials: credentials.to_owned(),
        }
    }

    fn with_token(&self, token: Option<&str>) -> Self {
        Self::new(&self.addr, token, &self.credentials)
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_with_stdin(args, None).await
    }

    async fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut command = Command::new(env!("CARGO_BIN_EXE_baton"));
        command
            .env_remove("BATON_ADDR")
            .env_remove("BATON_TOKEN")
            .env("BATON_CREDENTIALS", &self.credentials)
            .env("TZ", "UTC")
            .arg("--addr")
            .arg(&self.addr)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(token) = &self.token {
            command.env("BATON_TOKEN", token);
        }
        let mut child = command.spawn().expect("the baton binary starts");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("a stdin pipe");
            pipe.write_all(text.as_bytes()).await.unwrap();
            drop(pipe);
        }
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("baton {args:?} did not finish within {COMMAND_TIMEOUT:?}"))
            .expect("baton runs");
        Out {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A directory of the test's own for credentials files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("baton-cli-auth-{name}-{}", uuid_like()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn credentials(&self) -> PathBuf {
        self.0.join("credentials.json")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}-{nanos:x}", std::process::id())
}

async fn start_stack() -> TestStack {
    TestStack::start_with(StackOptions::default())
        .await
        .expect("a Baton stack (is Postgres at DATABASE_URL and Redis at REDIS_URL?)")
}

/// The secret half of a token: what must never be printed.
fn secret(token: &str) -> &str {
    token.rsplit('_').next().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_is_created_listed_used_and_revoked() {
    let stack = start_stack().await;
    let scratch = Scratch::new("lifecycle");
    let admin = Baton::new(
        &stack.endpoint(),
        Some(stack.token()),
        &scratch.credentials(),
    );

    // Created for another tenant by an admin of the system tenant; the token alone on stdout.
    let created = admin
        .run(&[
            "auth",
            "key",
            "create",
            "--role",
            "operator",
            "--tenant",
            "acme",
            "--name",
            "ci deploys",
        ])
        .await;
    created.expect_code(0);
    let token = created.stdout.trim().to_owned();
    assert_eq!(created.stdout, format!("{token}\n"), "{created}");
    let id = token
        .strip_prefix("bk_")
        .and_then(|rest| rest.split('_').next())
        .unwrap_or_else(|| panic!("not an API key token: {created}"))
        .to_owned();
    assert!(
        created.stderr.starts_with(&format!(
            "created API key {id} (tenant acme, role operator, name \"ci deploys\")"
        )),
        "{created}"
    );
    assert!(
        created.stderr.contains("export BATON_TOKEN=<token>"),
        "{created}"
    );
    assert!(!created.stderr.contains(secret(&token)), "{created}");

    // `-o json` holds the token too.
    let json = admin
        .run(&["-o", "json", "auth", "key", "create", "--role", "viewer"])
        .await;
    json.expect_code(0);
    let value = json.json();
    let viewer_token = value["token"].as_str().unwrap().to_owned();
    assert!(viewer_token.starts_with("bk_"), "{json}");
    assert_eq!(value["key"]["tenant"], "default", "{json}");
    assert_eq!(value["key"]["role"], "viewer", "{json}");
    assert_eq!(value["key"]["revoked_at"], Value::Null, "{json}");

    // Listed without tokens.
    let list = admin
        .run(&["auth", "key", "list", "--tenant", "acme"])
        .await;
    list.expect_code(0);
    let mut lines = list.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "TENANT", "ROLE", "NAME", "CREATED", "REVOKED"],
        "{list}"
    );
    let row = lines.next().unwrap_or_else(|| panic!("{list}"));
    assert!(
        row.starts_with(&format!("{id}  acme    operator  ci deploys  ")) && row.ends_with("  -"),
        "{list}"
    );
    assert!(!list.stdout.contains(secret(&token)), "{list}");
    let listed = admin
        .run(&["-o", "json", "auth", "key", "list", "--tenant", "acme"])
        .await;
    listed.expect_code(0);
    let keys = listed.json();
    assert_eq!(keys.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(keys[0]["id"], id.as_str());
    assert_eq!(keys[0]["name"], "ci deploys");
    assert!(keys[0].get("token").is_none(), "{listed}");

    // Used: the orchestrator takes it for what it was made as.
    let operator = admin.with_token(Some(&token));
    let whoami = operator.run(&["auth", "whoami"]).await;
    whoami.expect_code(0);
    assert!(
        whoami.stdout.starts_with(&format!(
            "principal  key:{id}\ntenant     acme\nrole       operator\nauth       api-keys\n"
        )),
        "{whoami}"
    );
    assert!(
        whoami
            .stdout
            .contains(&format!("token      the token from BATON_TOKEN (key {id})")),
        "{whoami}"
    );
    assert!(!whoami.stdout.contains(secret(&token)), "{whoami}");
    let whoami = operator.run(&["-o", "json", "auth", "whoami"]).await;
    let value = whoami.json();
    assert_eq!(value["tenant"], "acme", "{whoami}");
    assert_eq!(value["role"], "operator", "{whoami}");
    assert_eq!(value["token_source"], "BATON_TOKEN", "{whoami}");
    operator.run(&["run", "list"]).await.expect_code(0);

    // Revoked: calls with it are refused at once, with a hint and without the token.
    let revoked = admin.run(&["auth", "key", "revoke", &id]).await;
    revoked.expect_code(0);
    assert!(
        revoked.stdout.starts_with(&format!(
            "revoked API key {id} (tenant acme, role operator) at "
        )),
        "{revoked}"
    );
    let refused = operator.run(&["run", "list"]).await;
    refused.expect_code(2);
    assert_eq!(refused.stdout, "", "{refused}");
    assert!(
        refused.stderr.starts_with("error: Unauthenticated"),
        "{refused}"
    );
    assert!(
        refused.stderr.contains(&format!(
            "hint: {} did not accept the token from BATON_TOKEN (key {id})\n",
            stack.endpoint()
        )),
        "{refused}"
    );
    assert!(refused.stderr.ends_with(LOGIN_HINT), "{refused}");
    assert!(!refused.stderr.contains(secret(&token)), "{refused}");
    let all = admin
        .run(&[
            "-o", "json", "auth", "key", "list", "--tenant", "acme", "--all",
        ])
        .await;
    assert!(all.json()[0]["revoked_at"].is_string(), "{all}");
    let active = admin
        .run(&["auth", "key", "list", "--tenant", "acme"])
        .await;
    assert_eq!(active.stdout, "no active API keys\n", "{active}");

    // A token that is no key at all, and none at all.
    let garbage = admin
        .with_token(Some("bk_not_a_key"))
        .run(&["run", "list"])
        .await;
    garbage.expect_code(2);
    assert!(
        garbage.stderr.starts_with("error: Unauthenticated"),
        "{garbage}"
    );
    assert!(garbage.stderr.ends_with(LOGIN_HINT), "{garbage}");
    let missing = admin.with_token(None).run(&["run", "list"]).await;
    missing.expect_code(2);
    assert!(
        missing.stderr.contains(&format!(
            "hint: no token was sent: none was given, and {} holds none for {}\n",
            scratch.credentials().display(),
            stack.endpoint()
        )),
        "{missing}"
    );
    assert!(missing.stderr.ends_with(LOGIN_HINT), "{missing}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_may_read_but_not_start_a_run() {
    let stack = start_stack().await;
    let scratch = Scratch::new("viewer");
    stack
        .register(&std::fs::read_to_string(HELLO).unwrap())
        .await
        .unwrap();
    let token = stack.key("default", Role::Viewer).await.unwrap();
    let viewer = Baton::new(&stack.endpoint(), Some(&token), &scratch.credentials());
    viewer.run(&["workflow", "list"]).await.expect_code(0);
    let refused = viewer
        .run(&["run", "start", "examples/hello@1", "--input", "name=Ada"])
        .await;
    refused.expect_code(2);
    assert_eq!(refused.stdout, "", "{refused}");
    assert!(
        refused.stderr.starts_with("error: PermissionDenied"),
        "{refused}"
    );
    assert!(
        refused
            .stderr
            .contains("`baton auth whoami` shows its tenant and role"),
        "{refused}"
    );
    assert!(!refused.stderr.contains(secret(&token)), "{refused}");
    let keys = viewer.run(&["auth", "key", "list"]).await;
    keys.expect_code(2);
    assert!(keys.stderr.starts_with("error: PermissionDenied"), "{keys}");
    assert!(!keys.stderr.contains(secret(&token)), "{keys}");
    stack.stop().await;
}

/// `auth key create --database-url` (or `--db`) on a database no service has touched: the CLI
/// migrates it and records the key, which the orchestrator started on it then accepts.
async fn bootstrap_on(backend: TestBackend, flag: &str, target: String) {
    let scratch = Scratch::new("bootstrap");
    let offline = Baton::new("http://127.0.0.1:1", None, &scratch.credentials());
    let created = offline
        .run(&[
            "-o", "json", "auth", "key", "create", "--role", "admin", "--name", "first", flag,
            &target,
        ])
        .await;
    created.expect_code(0);
    let value = created.json();
    let token = value["token"].as_str().unwrap().to_owned();
    assert_eq!(value["key"]["tenant"], "default", "{created}");
    assert_eq!(value["key"]["created_by"], "bootstrap", "{created}");
    assert!(!created.stderr.contains(secret(&token)), "{created}");
    let id = value["key"]["id"].as_str().unwrap().to_owned();

    let stack = TestStack::start_on(backend, StackOptions::default())
        .await
        .expect("a Baton stack on the bootstrapped database");
    let first = Baton::new(&stack.endpoint(), Some(&token), &scratch.credentials());
    let whoami = first.run(&["-o", "json", "auth", "whoami"]).await;
    whoami.expect_code(0);
    assert_eq!(whoami.json()["principal"], format!("key:{id}"), "{whoami}");
    assert_eq!(whoami.json()["role"], "admin", "{whoami}");
    // An admin key like any other: it makes the next ones.
    first
        .run(&["auth", "key", "create", "--role", "viewer"])
        .await
        .expect_code(0);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_key_goes_straight_into_a_fresh_postgres_database() {
    let backend = TestBackend::create()
        .await
        .expect("Postgres at DATABASE_URL");
    let url = backend.database_url.clone();
    bootstrap_on(backend, "--database-url", url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_key_goes_straight_into_a_fresh_dev_database_file() {
    let backend = TestBackend::embedded().unwrap();
    let path = backend.db_path.display().to_string();
    bootstrap_on(backend, "--db", path).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_errors_name_what_failed() {
    let scratch = Scratch::new("bootstrap-errors");
    let offline = Baton::new("http://127.0.0.1:1", None, &scratch.credentials());
    let bad_tenant = offline
        .run(&[
            "auth",
            "key",
            "create",
            "--role",
            "admin",
            "--tenant",
            "a b",
            "--db",
            &scratch.0.join("x.db").display().to_string(),
        ])
        .await;
    bad_tenant.expect_code(2);
    assert!(bad_tenant.stderr.contains("tenant"), "{bad_tenant}");
    let unreachable = offline
        .run(&[
            "auth",
            "key",
            "create",
            "--role",
            "admin",
            "--database-url",
            "postgres://nobody:secret@127.0.0.1:1/none",
        ])
        .await;
    unreachable.expect_code(2);
    assert!(
        unreachable
            .stderr
            .starts_with("error: cannot connect to PostgreSQL at postgres://nobody:"),
        "{unreachable}"
    );
    assert!(!unreachable.stderr.contains("secret@"), "{unreachable}");
}

#[tokio::test(flavor = "multi_thread")]
async fn login_saves_a_checked_token_that_later_commands_find() {
    let stack = start_stack().await;
    let scratch = Scratch::new("login");
    let token = stack.key("default", Role::Operator).await.unwrap();
    let id = token.split('_').nth(1).unwrap().to_owned();
    let anonymous = Baton::new(&stack.endpoint(), None, &scratch.credentials());

    // A token the orchestrator refuses is not saved.
    let refused = anonymous
        .run_with_stdin(&["auth", "login"], Some("bk_0000000000000000_00\n"))
        .await;
    refused.expect_code(2);
    assert!(refused.stderr.contains("nothing was saved"), "{refused}");
    assert!(!scratch.credentials().exists(), "{refused}");

    let login = anonymous
        .run_with_stdin(&["auth", "login"], Some(&format!("{token}\n")))
        .await;
    login.expect_code(0);
    assert_eq!(
        login.stdout,
        format!(
            "logged in to {} as key:{id} (tenant default, role operator); the token is saved in {}\n",
            stack.endpoint(),
            scratch.credentials().display()
        ),
        "{login}"
    );
    assert!(!login.stdout.contains(secret(&token)), "{login}");

    // No token given: the saved one is sent.
    let whoami = anonymous.run(&["auth", "whoami"]).await;
    whoami.expect_code(0);
    assert!(whoami.stdout.contains("role       operator\n"), "{whoami}");
    assert!(
        whoami.stdout.contains(&format!(
            "token      the token saved in {} (key {id})",
            scratch.credentials().display()
        )),
        "{whoami}"
    );
    anonymous.run(&["run", "list"]).await.expect_code(0);
    let printed = anonymous.run(&["auth", "token"]).await;
    assert_eq!(printed.stdout, format!("{token}\n"), "{printed}");
    // `--token` wins over the saved one.
    let flag = anonymous
        .run(&["auth", "whoami", "--token", stack.token()])
        .await;
    assert!(flag.stdout.contains("role       admin\n"), "{flag}");

    let logout = anonymous.run(&["auth", "logout"]).await;
    logout.expect_code(0);
    assert_eq!(
        logout.stdout,
        format!(
            "removed the token for {} from {}\n",
            stack.endpoint(),
            scratch.credentials().display()
        )
    );
    let after = anonymous.run(&["run", "list"]).await;
    after.expect_code(2);
    assert!(after.stderr.contains("hint: no token was sent"), "{after}");
    let none = anonymous.run(&["auth", "token"]).await;
    none.expect_code(2);
    assert!(none.stderr.contains("run `baton auth login`"), "{none}");
    stack.stop().await;
}
