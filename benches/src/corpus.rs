//! Deterministic generators for realistic backup inputs.
//!
//! Each generator writes exactly `n` bytes, so a corpus has a predictable
//! size. The text generators draw from small vocabularies with random
//! numbers mixed in, which gives zstd -3 ratios close to real dumps and logs
//! (roughly 3-6x) rather than the 100x of repeated text.

use std::io::{self, Write};

/// How a corpus of a given total size is split between kinds of data.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Bytes of SQL dump text.
    pub sql: u64,
    /// Bytes of access logs.
    pub logs: u64,
    /// Bytes of incompressible media.
    pub media: u64,
    /// Bytes spread over many small source files.
    pub small_files: u64,
}

impl Mix {
    /// 31% SQL, 25% logs, 25% media, 19% small files.
    pub fn for_total(total: u64) -> Self {
        let sql = total * 31 / 100;
        let logs = total / 4;
        let media = total / 4;
        Mix {
            sql,
            logs,
            media,
            small_files: total - sql - logs - media,
        }
    }
}

/// SplitMix64: tiny, fast and stable across versions, so corpora are
/// reproducible forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// A small file's size: mostly under 8 KiB, a few up to 64 KiB, some empty.
    pub fn small_file_size(&mut self) -> u64 {
        match self.below(100) {
            0..=1 => 0,
            2..=69 => 64 + self.below(4 << 10),
            70..=94 => (4 << 10) + self.below(12 << 10),
            _ => (16 << 10) + self.below(48 << 10),
        }
    }
}

const NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
];
const STATUSES: &[&str] = &[
    "pending",
    "paid",
    "shipped",
    "delivered",
    "refunded",
    "cancelled",
];
const PATHS: &[&str] = &[
    "/",
    "/login",
    "/api/v1/orders",
    "/api/v1/orders/",
    "/api/v1/users/",
    "/static/app.js",
    "/static/app.css",
    "/healthz",
    "/metrics",
    "/api/v1/search?q=",
    "/favicon.ico",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 Safari/605.1.15",
    "curl/8.5.0",
    "Prometheus/2.42.0",
    "Go-http-client/1.1",
];
const WORDS: &[&str] = &[
    "let", "fn", "match", "self", "return", "Some", "None", "Ok", "Err", "impl", "pub", "struct",
    "for", "in", "if", "else", "while", "mut", "config", "store", "backup", "manifest", "stream",
    "buffer", "len", "error", "value", "key", "index", "count",
];

/// Bounded writer that stops after exactly `n` bytes.
struct Exact<'a> {
    out: &'a mut dyn Write,
    left: u64,
}

impl Exact<'_> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<bool> {
        let take = (bytes.len() as u64).min(self.left) as usize;
        self.out.write_all(&bytes[..take])?;
        self.left -= take as u64;
        Ok(self.left > 0)
    }
}

/// A PostgreSQL plain-format dump: DDL plus `COPY` blocks of orders.
///
/// # Errors
///
/// When writing to `out` fails.
pub fn sql_dump(rng: &mut Rng, out: &mut dyn Write, n: u64) -> io::Result<()> {
    let mut w = Exact { out, left: n };
    let mut line = String::with_capacity(256);
    let mut id = 0u64;
    let mut table = 0;
    'outer: loop {
        line.clear();
        line.push_str(&format!(
            "\nCREATE TABLE public.orders_{table} (\n    id bigint NOT NULL,\n    customer text,\n    \
             email text,\n    status text,\n    amount_cents integer,\n    created_at timestamptz\n);\n\n\
             COPY public.orders_{table} (id, customer, email, status, amount_cents, created_at) FROM stdin;\n"
        ));
        if !w.put(line.as_bytes())? {
            break;
        }
        for _ in 0..200_000 {
            id += 1;
            let name = rng.pick(NAMES);
            line.clear();
            line.push_str(&format!(
                "{id}\t{name} {}\t{name}.{}@example.com\t{}\t{}\t2026-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00\n",
                rng.pick(NAMES),
                rng.below(10_000),
                rng.pick(STATUSES),
                rng.below(1_000_000),
                1 + rng.below(12),
                1 + rng.below(28),
                rng.below(24),
                rng.below(60),
                rng.below(60),
                rng.below(1_000_000),
            ));
            if !w.put(line.as_bytes())? {
                break 'outer;
            }
        }
        if !w.put(b"\\.\n")? {
            break;
        }
        table += 1;
    }
    Ok(())
}

/// Combined-format access log lines with increasing timestamps.
///
/// # Errors
///
/// When writing to `out` fails.
pub fn access_log(rng: &mut Rng, out: &mut dyn Write, n: u64) -> io::Result<()> {
    let mut w = Exact { out, left: n };
    let mut line = String::with_capacity(256);
    let mut t = 1_700_000_000u64;
    loop {
        t += rng.below(3);
        line.clear();
        line.push_str(&format!(
            "10.{}.{}.{} - - [{}] \"GET {}{} HTTP/1.1\" {} {} \"-\" \"{}\" rt={}.{:03}\n",
            rng.below(256),
            rng.below(256),
            rng.below(256),
            t,
            rng.pick(PATHS),
            rng.below(100_000),
            [200, 200, 200, 200, 304, 404, 500][rng.below(7) as usize],
            rng.below(50_000),
            rng.pick(AGENTS),
            rng.below(3),
            rng.below(1000),
        ));
        if !w.put(line.as_bytes())? {
            return Ok(());
        }
    }
}

/// Source-code-like text.
///
/// # Errors
///
/// When writing to `out` fails.
pub fn source(rng: &mut Rng, out: &mut dyn Write, n: u64) -> io::Result<()> {
    let mut w = Exact { out, left: n };
    let mut line = String::with_capacity(128);
    while w.left > 0 {
        line.clear();
        for _ in 0..rng.below(4) {
            line.push_str("    ");
        }
        for _ in 0..(2 + rng.below(8)) {
            line.push_str(rng.pick(WORDS));
            if rng.below(4) == 0 {
                line.push_str(&format!("_{}", rng.below(100)));
            }
            line.push(' ');
        }
        line.push_str(";\n");
        if !w.put(line.as_bytes())? {
            break;
        }
    }
    Ok(())
}

/// Incompressible bytes, like already-compressed media.
///
/// # Errors
///
/// When writing to `out` fails.
pub fn random(rng: &mut Rng, out: &mut dyn Write, n: u64) -> io::Result<()> {
    let mut w = Exact { out, left: n };
    let mut buf = vec![0u8; 64 << 10];
    while w.left > 0 {
        for chunk in buf.chunks_exact_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        if !w.put(&buf)? {
            break;
        }
    }
    Ok(())
}
