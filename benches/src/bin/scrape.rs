//! Scrapes HTTP endpoints the way Prometheus does (one GET after another,
//! a kept-alive connection per endpoint) and reports latency percentiles.
//!
//!     scrape --count 1000 http://127.0.0.1:9188/metrics [URL ...]
//!
//! Prints one JSON line per URL: count, bytes of the last answer, and
//! p50/p90/p99/max latency in milliseconds. Each round scrapes every URL
//! once, in order.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut count = 1000usize;
    let mut urls = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--count" => count = args.next().ok_or("--count N")?.parse()?,
            url => urls.push(url.to_owned()),
        }
    }
    if urls.is_empty() {
        return Err("usage: scrape [--count N] URL...".into());
    }
    let mut targets: Vec<Target> = urls
        .iter()
        .map(|u| Target::new(u))
        .collect::<Result<_, _>>()?;
    for _ in 0..count {
        for t in &mut targets {
            t.scrape()?;
        }
    }
    for t in &mut targets {
        t.times.sort();
        let pct = |p: f64| {
            let i = ((t.times.len() as f64 * p).ceil() as usize).clamp(1, t.times.len()) - 1;
            t.times[i].as_secs_f64() * 1000.0
        };
        println!(
            "{{\"url\":\"{}\",\"count\":{},\"bytes\":{},\"p50_ms\":{:.2},\"p90_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}}}",
            t.url,
            t.times.len(),
            t.last_bytes,
            pct(0.50),
            pct(0.90),
            pct(0.99),
            pct(1.0)
        );
    }
    Ok(())
}

struct Target {
    url: String,
    host: String,
    path: String,
    conn: Option<BufReader<TcpStream>>,
    times: Vec<Duration>,
    last_bytes: usize,
}

impl Target {
    fn new(url: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        Ok(Target {
            url: url.to_owned(),
            host: host.to_owned(),
            path: format!("/{path}"),
            conn: None,
            times: Vec::new(),
            last_bytes: 0,
        })
    }

    fn scrape(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let started = Instant::now();
        if self.conn.is_none() {
            let stream = TcpStream::connect(&self.host)?;
            stream.set_nodelay(true)?;
            self.conn = Some(BufReader::new(stream));
        }
        let conn = self.conn.as_mut().ok_or("no connection")?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/plain;version=0.0.4\r\nAccept-Encoding: identity\r\n\r\n",
            self.path, self.host
        );
        conn.get_mut().write_all(request.as_bytes())?;
        let mut status = String::new();
        conn.read_line(&mut status)?;
        if !status.contains(" 200 ") {
            return Err(format!("{}: {}", self.url, status.trim()).into());
        }
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        loop {
            let mut line = String::new();
            conn.read_line(&mut line)?;
            let l = line.trim().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
            chunked |= l.starts_with("transfer-encoding:") && l.contains("chunked");
            close |= l.starts_with("connection:") && l.contains("close");
        }
        let mut body = Vec::new();
        if let Some(n) = length {
            body.resize(n, 0);
            conn.read_exact(&mut body)?;
        } else if chunked {
            loop {
                let mut size = String::new();
                conn.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim(), 16)?;
                let mut chunk = vec![0; n + 2];
                conn.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            conn.read_to_end(&mut body)?;
            close = true;
        }
        self.times.push(started.elapsed());
        self.last_bytes = body.len();
        if close {
            self.conn = None;
        }
        Ok(())
    }
}
