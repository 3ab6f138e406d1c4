//! Connections, bounded: how many at once, how long one may take to send
//! its request headers, and how long one may sit idle.
//!
//! A client that connects and sends nothing, sends half a header, or keeps
//! a connection open between requests holds a file descriptor and a little
//! memory. So: at most `max_connections` are open; the headers of each
//! request must arrive within `header_timeout`; a connection on which
//! nothing moves for `idle_timeout` is closed. When every slot is taken, the
//! connection that has been idle longest is closed to make room (a scrape
//! gets in while idle clients wait); when every connection is busy, the
//! new one is refused. Counted in `shipshape_metricsd_connections_*`.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_core::{CollectError, Collector, Family};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tower_service::Service;

/// The limits, from the `[server]` table.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Connections open at once.
    pub max: usize,
    /// Time for a request's headers to arrive.
    pub header_timeout: Duration,
    /// Time a connection may sit with nothing moving.
    pub idle_timeout: Duration,
}

/// Counters of what the bounds did, and the idle connections, oldest
/// first, that may be closed to make room.
#[derive(Debug, Default)]
pub struct Connections {
    open: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    evicted: AtomicU64,
    timed_out: AtomicU64,
    idle: Mutex<VecDeque<(u64, Arc<Notify>)>>,
}

impl Connections {
    fn idle(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Arc<Notify>)>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_idle(&self, id: u64, close: &Arc<Notify>, idle: bool) {
        let mut list = self.idle();
        list.retain(|(i, _)| *i != id);
        if idle {
            list.push_back((id, Arc::clone(close)));
        }
    }

    /// Asks the connection idle longest to close; false when none is idle.
    fn evict_one(&self) -> bool {
        match self.idle().pop_front() {
            Some((_, close)) => {
                close.notify_one();
                self.evicted.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl Collector for Connections {
    fn name(&self) -> &str {
        "server"
    }

    async fn collect(&self) -> Result<Vec<Family>, CollectError> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        let mut closed = Family::counter(
            "shipshape_metricsd_connections_closed",
            "Connections metricsd closed to stay within its bounds, by why",
        );
        closed.push(&[("reason", "refused")], get(&self.refused));
        closed.push(&[("reason", "evicted_idle")], get(&self.evicted));
        closed.push(&[("reason", "timeout")], get(&self.timed_out));
        Ok(vec![
            Family::gauge(
                "shipshape_metricsd_connections_open",
                "HTTP connections metricsd holds open",
            )
            .with_value(get(&self.open)),
            Family::counter(
                "shipshape_metricsd_connections_accepted",
                "HTTP connections metricsd accepted",
            )
            .with_value(get(&self.accepted)),
            closed,
        ])
    }
}

/// Accepts connections until `shutdown`, serving `app` on each within
/// `bounds`; then lets open requests finish (up to 5 s).
pub async fn accept(
    listener: tokio::net::TcpListener,
    app: Router,
    bounds: Bounds,
    stats: Arc<Connections>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(bounds.max.max(1)));
    let (stop, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next_id = 0u64;
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait for some to close.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) if stats.evict_one() => {
                let freed = Arc::clone(&slots).acquire_owned();
                tokio::time::timeout(Duration::from_millis(200), freed)
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            Err(_) => None,
        };
        let Some(slot) = slot else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        next_id += 1;
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(serve_one(
            stream,
            peer,
            app.clone(),
            bounds,
            Arc::clone(&stats),
            (next_id, stopped.clone()),
            slot,
        ));
    }
    let _ = stop.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
}

/// One connection, from accept to close.
async fn serve_one(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    bounds: Bounds,
    stats: Arc<Connections>,
    (id, mut stop): (u64, watch::Receiver<bool>),
    _slot: OwnedSemaphorePermit,
) {
    stats.open.fetch_add(1, Ordering::Relaxed);
    let close = Arc::new(Notify::new());
    stats.set_idle(id, &close, true);
    let service = {
        let (stats, close) = (Arc::clone(&stats), Arc::clone(&close));
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            stats.set_idle(id, &close, false);
            let (mut app, stats, close) = (app.clone(), Arc::clone(&stats), Arc::clone(&close));
            async move {
                let response = app.call(request).await;
                stats.set_idle(id, &close, true);
                response
            }
        })
    };
    let io = TokioIo::new(Idle::new(stream, bounds.idle_timeout));
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(bounds.header_timeout)
        .serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = close.notified() => Ok(()),
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        let idle = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<io::Error>())
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut);
        if e.is_timeout() || idle {
            stats.timed_out.fetch_add(1, Ordering::Relaxed);
        } else {
            tracing::debug!(%peer, "connection: {e}");
        }
    }
    stats.set_idle(id, &close, false);
    stats.open.fetch_sub(1, Ordering::Relaxed);
}

/// A TCP stream that fails with `TimedOut` once nothing has been read or
/// written on it for its limit.
struct Idle {
    inner: TcpStream,
    limit: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Idle {
    fn new(inner: TcpStream, limit: Duration) -> Idle {
        Idle {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }

    fn moved(&mut self) {
        let next = tokio::time::Instant::now() + self.limit;
        self.deadline.as_mut().reset(next);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "idle connection closed",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Idle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.expired(cx),
        }
    }
}

impl AsyncWrite for Idle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                self.moved();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.expired(cx).map(|r| r.map(|()| 0)),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
