//! A TCP proxy that injects network faults between a client and a real
//! server: delays, connections reset after N bytes, connections that
//! stall (black-holed) after N bytes, or a byte corrupted in transit.
//!
//! ```no_run
//! # async fn demo() {
//! use test_support::proxy::{Fault, FaultProxy};
//! let proxy = FaultProxy::start("127.0.0.1:13900".parse().unwrap()).await;
//! // The next 3 connections are reset after 1 MiB sent by the client.
//! proxy.set(Fault::ResetAfter { bytes: 1 << 20 }, Some(3));
//! let endpoint = format!("http://{}", proxy.addr());
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What happens to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Bytes pass through untouched.
    None,
    /// Every read from the client is delayed.
    Delay(Duration),
    /// After the client has sent `bytes`, both sides are reset (TCP RST):
    /// a dropped connection in the middle of a request.
    ResetAfter {
        /// Client bytes let through first.
        bytes: u64,
    },
    /// The client's byte at offset `at` is inverted on its way to the
    /// server; everything else passes: corruption in transit.
    FlipAt {
        /// Offset in the client's stream on this connection.
        at: u64,
    },
    /// After the client has sent `bytes`, nothing more is forwarded in
    /// either direction until the client gives up: a black hole.
    StallAfter {
        /// Client bytes let through first.
        bytes: u64,
    },
}

#[derive(Debug)]
struct Plan {
    fault: Fault,
    /// How many more new connections get `fault`; `None` for all.
    remaining: Option<u32>,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    plan: Arc<Mutex<Plan>>,
    faulted: Arc<AtomicU64>,
    downloaded: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test environment).
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the fault proxy");
        let addr = listener.local_addr().expect("proxy address");
        let plan = Arc::new(Mutex::new(Plan {
            fault: Fault::None,
            remaining: None,
        }));
        let faulted = Arc::new(AtomicU64::new(0));
        let downloaded = Arc::new(AtomicU64::new(0));
        let (p, f, d) = (
            Arc::clone(&plan),
            Arc::clone(&faulted),
            Arc::clone(&downloaded),
        );
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let fault = {
                    let mut plan = p.lock().unwrap_or_else(|e| e.into_inner());
                    match plan.remaining {
                        Some(0) => Fault::None,
                        Some(ref mut n) => {
                            *n -= 1;
                            plan.fault
                        }
                        None => plan.fault,
                    }
                };
                if fault != Fault::None {
                    f.fetch_add(1, Ordering::Relaxed);
                }
                tokio::spawn(relay(client, upstream, fault, Arc::clone(&d)));
            }
        });
        FaultProxy {
            addr,
            plan,
            faulted,
            downloaded,
            task,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Applies `fault` to the next `connections` new connections (all new
    /// connections with `None`). Open connections keep their fault.
    pub fn set(&self, fault: Fault, connections: Option<u32>) {
        let mut plan = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        *plan = Plan {
            fault,
            remaining: connections,
        };
    }

    /// Bytes the server has sent to clients so far (HTTP headers
    /// included), and zero again after.
    pub fn take_downloaded(&self) -> u64 {
        self.downloaded.swap(0, Ordering::Relaxed)
    }

    /// How many connections have been given a fault so far.
    pub fn faulted(&self) -> u64 {
        self.faulted.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, fault: Fault, downloaded: Arc<AtomicU64>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let upload = async {
        let mut sent = 0u64;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return Outcome::Closed,
                Ok(n) => n,
            };
            let mut n = n;
            match fault {
                Fault::Delay(d) => tokio::time::sleep(d).await,
                Fault::ResetAfter { bytes } | Fault::StallAfter { bytes } => {
                    let left = bytes.saturating_sub(sent);
                    if (n as u64) >= left {
                        n = left as usize;
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return Outcome::Closed;
                        }
                        return match fault {
                            Fault::ResetAfter { .. } => Outcome::Reset,
                            _ => Outcome::Stall,
                        };
                    }
                }
                Fault::FlipAt { at } => {
                    if (sent..sent + n as u64).contains(&at) {
                        let i = (at - sent) as usize;
                        buf[i] = !buf[i];
                    }
                }
                Fault::None => {}
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                return Outcome::Closed;
            }
            sent += n as u64;
        }
    };
    let download = async {
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n) = sr.read(&mut buf).await {
            if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            downloaded.fetch_add(n as u64, Ordering::Relaxed);
        }
        let _ = cw.shutdown().await;
        Outcome::Closed
    };
    let outcome = tokio::select! {
        o = upload => o,
        o = download => o,
    };
    match outcome {
        Outcome::Closed => {}
        Outcome::Reset => {
            // Dropping a socket with unread data or zero linger sends RST.
            if let (Ok(client), Ok(server)) = (cr.reunite(cw), sr.reunite(sw)) {
                let _ = socket_linger_zero(&client);
                let _ = socket_linger_zero(&server);
            }
        }
        Outcome::Stall => {
            // Hold both halves open, forwarding nothing, until the client
            // hangs up.
            let mut sink = [0u8; 4096];
            while let Ok(n) = cr.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
    }
}

enum Outcome {
    Closed,
    Reset,
    Stall,
}

fn socket_linger_zero(stream: &TcpStream) -> std::io::Result<()> {
    socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO))
}
