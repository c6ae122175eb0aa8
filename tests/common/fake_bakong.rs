//! A fake Bakong Open API on 127.0.0.1 for the transport and CLI tests: a
//! `std::net::TcpListener` on a thread that answers each connection with the
//! next scripted [`Reply`] (then closes it), and records what it was sent.
//!
//! Bounded: it serves at most the scripted replies, stops accepting after
//! [`FakeBakong::ACCEPT_FOR`], and every socket read and write has a timeout.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long after reading the request before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn json(body: &str) -> Self {
        Reply::new(200, body).header("Content-Type", "application/json")
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delay_ms(mut self, ms: u64) -> Self {
        self.delay = Duration::from_millis(ms);
        self
    }

    /// Bakong's answer for a QR nobody has paid (errorCode 1).
    pub fn pending() -> Self {
        Reply::json(
            r#"{"responseCode":1,"responseMessage":"Transaction could not be found. Please check and try again.","errorCode":1,"data":null}"#,
        )
    }

    /// Bakong's answer for a payment of `amount` (JSON number text) `currency`.
    pub fn paid(amount: &str, currency: &str) -> Self {
        Reply::json(&format!(
            r#"{{"responseCode":0,"responseMessage":"Getting transaction successfully.","errorCode":null,"data":{{"hash":"8a9b0c1d2e3f40516273849505a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e","fromAccountId":"payer@abaa","toAccountId":"jonhsmith@nbcq","currency":"{currency}","amount":{amount},"description":null,"createdDateMs":1700000012345,"acknowledgedDateMs":1700000013000}}}}"#
        ))
    }
}

/// A request as the fake received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct FakeBakong {
    port: u16,
    thread: JoinHandle<Vec<Seen>>,
}

impl FakeBakong {
    /// How long the fake waits for connections before giving up.
    pub const ACCEPT_FOR: Duration = Duration::from_secs(20);

    /// Starts serving `replies`, one connection each, in order.
    pub fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let deadline = Instant::now() + Self::ACCEPT_FOR;
            for reply in replies {
                let stream = loop {
                    match listener.accept() {
                        Ok((s, _)) => break Some(s),
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break None,
                    }
                };
                let Some(stream) = stream else { break };
                if let Some(s) = serve(stream, &reply) {
                    seen.push(s);
                }
            }
            seen
        });
        FakeBakong { port, thread }
    }

    /// `http://127.0.0.1:PORT`, a base URL for `Api::new`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits for the server thread (all replies served, or its accept deadline)
    /// and returns the requests it saw, in order.
    pub fn finish(self) -> Vec<Seen> {
        self.thread.join().expect("fake Bakong thread")
    }
}

fn serve(stream: TcpStream, reply: &Reply) -> Option<Seen> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    let mut length = 0usize;
    for _ in 0..100 {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().ok()?;
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    std::thread::sleep(reply.delay);
    let mut out = format!(
        "HTTP/1.1 {} Fake\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (n, v) in &reply.headers {
        out.push_str(n);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut stream = stream;
    // The client may have given up (timeout, body cap): write errors are expected.
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.write_all(&reply.body);
    let _ = stream.flush();
    Some(Seen {
        method,
        path,
        headers,
        body,
    })
}
