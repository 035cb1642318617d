//! A TCP relay that can break the line, to partition a node from its database on loopback.
//! Two ways, as real networks fail:
//! - [`TcpRelay::cut`]: every open connection is closed and new ones are closed on arrival (a
//!   peer that resets);
//! - [`TcpRelay::stall`]: connections stay open but no byte passes either way, and new ones are
//!   accepted and held (a link that drops packets: the client waits, nothing errors).
//!
//! [`TcpRelay::restore`] lets bytes through again (held bytes first).
//!
//! ```ignore
//! let relay = TcpRelay::start("127.0.0.1:5432").await;
//! // point the client at relay.addr() …
//! relay.stall();
//! relay.restore();
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The state of the line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Line {
    stalled: bool,
    cut: bool,
    /// Bumped by every cut: connections opened before it close.
    cuts: u64,
}

/// The running relay; closes every connection when dropped.
pub struct TcpRelay {
    addr: SocketAddr,
    line: Arc<watch::Sender<Line>>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpRelay {
    /// Listens on a free loopback port and relays each connection to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> TcpRelay {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the TCP relay");
        let addr = listener.local_addr().expect("relay address");
        let line = Arc::new(watch::Sender::new(Line::default()));
        let upstream = upstream.to_owned();
        let accepting = line.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if accepting.borrow().cut {
                    drop(client);
                    continue;
                }
                tokio::spawn(relay(client, upstream.clone(), accepting.subscribe()));
            }
        });
        TcpRelay { addr, line, task }
    }

    /// `127.0.0.1:PORT`: where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every open connection and closes new ones until [`TcpRelay::restore`].
    pub fn cut(&self) {
        self.line.send_modify(|l| {
            l.cut = true;
            l.cuts += 1;
        });
    }

    /// Holds every byte, both ways, until [`TcpRelay::restore`].
    pub fn stall(&self) {
        self.line.send_modify(|l| l.stalled = true);
    }

    pub fn restore(&self) {
        self.line.send_modify(|l| {
            l.stalled = false;
            l.cut = false;
        });
    }
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.task.abort();
        self.line.send_modify(|l| l.cuts += 1);
    }
}

/// Pumps both ways until either side closes or the line is cut.
async fn relay(client: TcpStream, upstream: String, line: watch::Receiver<Line>) {
    let born = line.borrow().cuts;
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = pump(client_read, server_write, line.clone(), born) => {}
        _ = pump(server_read, client_write, line, born) => {}
    }
}

/// Copies `from` to `to`, holding each chunk while the line is stalled; returns when `from`
/// closes, a write fails or the line is cut after `born`.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut line: watch::Receiver<Line>,
    born: u64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = line.wait_for(|l| l.cuts != born) => return,
        };
        let open = line.wait_for(|l| l.cuts != born || !l.stalled).await;
        if open.map_or(true, |l| l.cuts != born) {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
