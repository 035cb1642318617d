//! A peer child process: started on a free loopback port, waited on until it answers HTTP,
//! killed (and reaped) on drop.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// How many times a peer is started on a new port when its port was taken meanwhile.
const PORT_ATTEMPTS: usize = 3;

pub struct PeerProcess {
    name: &'static str,
    port: u16,
    child: Child,
    /// Held open for the peer's lifetime: the launchers exit when their stdin closes, which also
    /// happens when this test process dies without running destructors.
    _stdin: Option<ChildStdin>,
    log_path: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl PeerProcess {
    /// Starts `make(port)` with a free port, then polls `GET http://127.0.0.1:PORT{probe_path}`
    /// until any HTTP reply arrives, within `timeout`. Retries on a new port when the process
    /// exits early because the port was taken.
    pub async fn start(
        name: &'static str,
        probe_path: &str,
        timeout: Duration,
        mut make: impl FnMut(u16) -> Command,
    ) -> PeerProcess {
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            let mut peer = Self::spawn(name, port, make(port));
            match peer.wait_ready(probe_path, timeout).await {
                Ok(()) => return peer,
                Err(Exit::PortTaken) if attempt < PORT_ATTEMPTS => continue,
                Err(Exit::PortTaken) => panic!(
                    "{name}: port taken {PORT_ATTEMPTS} times in a row; log:\n{}",
                    peer.log()
                ),
                Err(Exit::Failed(why)) => {
                    panic!("{name} did not start: {why}; log:\n{}", peer.log())
                }
            }
        }
        unreachable!()
    }

    fn spawn(name: &'static str, port: u16, mut cmd: Command) -> PeerProcess {
        let log_dir = tempfile::Builder::new()
            .prefix(&format!("tributary-{name}-"))
            .tempdir()
            .expect("temp dir for peer log");
        let log_path = log_dir.path().join("peer.log");
        let log = File::create(&log_path).expect("create peer log");
        let log_err = log.try_clone().expect("clone peer log handle");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot spawn {cmd:?}: {e}"));
        let stdin = child.stdin.take();
        PeerProcess {
            name,
            port,
            child,
            _stdin: stdin,
            log_path,
            _log_dir: log_dir,
        }
    }

    async fn wait_ready(&mut self, probe_path: &str, timeout: Duration) -> Result<(), Exit> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("reqwest client");
        let url = format!("{}{probe_path}", self.endpoint());
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait peer") {
                let log = self.log();
                return Err(
                    if log.contains("EADDRINUSE") || log.contains("Address already in use") {
                        Exit::PortTaken
                    } else {
                        Exit::Failed(format!("exited early with {status}"))
                    },
                );
            }
            if http.get(&url).send().await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Exit::Failed(format!(
                    "no HTTP answer from {url} within {timeout:?}"
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything the peer printed so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether the process is still running (kinesalite exits on some bad requests).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

enum Exit {
    PortTaken,
    Failed(String),
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        // SIGKILL then reap: no zombie, no leaked peer, even while unwinding from a panic.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
