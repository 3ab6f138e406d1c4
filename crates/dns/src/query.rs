//! Asking one server one question: UDP first, TCP when the answer was
//! truncated, everything bounded by one timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::Error;
use crate::record::RecordType;
use crate::wire::{self, Answer, Status};

/// The largest DNS message over TCP (a two-byte length prefix).
const MAX_MESSAGE: usize = 65_535;

/// One server's answer to one question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// `IP:PORT`.
    pub server: SocketAddr,
    /// The answer; `status` is `TIMEOUT` when none came in time.
    #[serde(flatten)]
    pub answer: Answer,
    /// How long the server took (or the timeout).
    pub elapsed_ms: u64,
    /// Why there is no answer, for `TIMEOUT` and `ERROR` without a
    /// response code (a refused connection, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Asks `server` for `name`/`rtype`; never fails: a server that does not
/// answer, or answers garbage, is an outcome too.
pub async fn ask(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    recurse: bool,
    timeout: Duration,
) -> Outcome {
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, exchange(server, name, rtype, recurse)).await;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let failed = |status: Status, error: String| Outcome {
        server,
        answer: Answer::empty(status),
        elapsed_ms,
        error: Some(error),
    };
    match result {
        Ok(Ok(answer)) => Outcome {
            server,
            answer,
            elapsed_ms,
            error: None,
        },
        Ok(Err(e)) => failed(Status::Error, e.to_string()),
        Err(_) => failed(
            Status::Timeout,
            format!("no answer within {}", settings::duration::format(timeout)),
        ),
    }
}

async fn exchange(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    recurse: bool,
) -> Result<Answer, Error> {
    let id = rand_id();
    let request = wire::query(name, rtype, id, recurse)?;
    let io = |e: std::io::Error| Error::Query {
        server,
        message: e.to_string(),
    };
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    socket.send(&request).await.map_err(io)?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).await.map_err(io)?;
        // Anything that is not the answer to this query (a late answer to
        // an earlier one, noise) is ignored, as resolvers do.
        let Ok(answer) = wire::classify(&buf[..n], id, name, rtype) else {
            continue;
        };
        if truncated(&buf[..n]) {
            break;
        }
        return Ok(answer);
    }
    let bytes = tcp_exchange(server, &request).await?;
    wire::classify(&bytes, id, name, rtype).map_err(|e| Error::Query {
        server,
        message: e.to_string(),
    })
}

fn truncated(bytes: &[u8]) -> bool {
    bytes.get(2).is_some_and(|flags| flags & 0x02 != 0)
}

/// A random message id.
pub(crate) fn rand_id() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    (RandomState::new().hash_one(nanos) & 0xffff) as u16
}

/// Sends one message over TCP and reads one back.
pub(crate) async fn tcp_exchange(server: SocketAddr, request: &[u8]) -> Result<Vec<u8>, Error> {
    let mut stream = tcp_send(server, request).await?;
    tcp_read(server, &mut stream).await
}

pub(crate) async fn tcp_send(server: SocketAddr, request: &[u8]) -> Result<TcpStream, Error> {
    let io = |e: std::io::Error| Error::Query {
        server,
        message: e.to_string(),
    };
    let len = u16::try_from(request.len()).map_err(|_| Error::Query {
        server,
        message: "message too large for TCP".into(),
    })?;
    let mut stream = TcpStream::connect(server).await.map_err(io)?;
    let mut framed = Vec::with_capacity(request.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(request);
    stream.write_all(&framed).await.map_err(io)?;
    Ok(stream)
}

/// Reads one length-prefixed message.
pub(crate) async fn tcp_read(server: SocketAddr, stream: &mut TcpStream) -> Result<Vec<u8>, Error> {
    let io = |e: std::io::Error| Error::Query {
        server,
        message: e.to_string(),
    };
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(io)?;
    let len = usize::from(u16::from_be_bytes(len)).min(MAX_MESSAGE);
    let mut bytes = vec![0u8; len];
    stream.read_exact(&mut bytes).await.map_err(io)?;
    Ok(bytes)
}
