//! `khqr payments export` against a fake khqr-server on 127.0.0.1: the
//! filters and key it sends, the CSV streamed to a file or stdout, the
//! server's error message and exit status 6, no half file after a broken
//! transfer.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{json_of, khqr_with};

const KEY: &str = "khqr_sk_test";
const CSV: &str = "md5,tran,username\r\nabc,T1,\"Sok, \"\"Dara\"\"\r\nសុខ\"\r\n";

/// A fake server answering `answers` connections in turn (each request's
/// line and `Authorization` header kept in `seen`); every wait is bounded.
/// What the fake saw: each request's line and `Authorization` value.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

fn fake(answers: Vec<&'static str>) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    std::thread::spawn(move || {
        for answer in answers {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let mut auth = String::new();
            for _ in 0..50 {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h
                    .strip_prefix("authorization: ")
                    .or(h.strip_prefix("Authorization: "))
                {
                    v.trim().clone_into(&mut auth);
                }
            }
            kept.lock().unwrap().push((line.trim().to_owned(), auth));
            let mut stream = stream;
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (base, seen)
}

fn chunked_ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/csv; charset=utf-8\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    )
}

fn temp_dir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("khqr-cli-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn export_streams_the_csv_to_a_file_or_stdout() {
    let ok: &'static str = Box::leak(chunked_ok(CSV).into_boxed_str());
    let (base, seen) = fake(vec![ok, ok]);
    let dir = temp_dir("export");
    let file = dir.join("payments.csv");
    let o = khqr_with(
        &[
            "payments",
            "export",
            "--server",
            &base,
            "--status",
            "paid",
            "--from",
            "2026-12-06T00:00:00Z",
            "--bakongid",
            "shop@abaa",
            "-o",
            file.to_str().unwrap(),
        ],
        &[("KHQR_API_KEY", KEY)],
        "",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json_of(&o);
    assert_eq!(v["file"], file.display().to_string());
    assert_eq!(v["bytes"], CSV.len());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), CSV);
    assert!(!dir.join("payments.csv.part").exists());
    // To stdout, the key from --key: the CSV alone.
    let o = khqr_with(
        &[
            "payments",
            "export",
            "--server",
            &format!("{base}/"),
            "--key",
            KEY,
        ],
        &[],
        "",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), CSV);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (
                "GET /khqr/merchant/payments.csv?from=2026-12-06T00%3A00%3A00Z&status=paid&bakongid=shop%40abaa HTTP/1.1".to_owned(),
                format!("Bearer {KEY}")
            ),
            (
                "GET /khqr/merchant/payments.csv HTTP/1.1".to_owned(),
                format!("Bearer {KEY}")
            ),
        ]
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn export_fails_with_the_servers_message_and_leaves_no_half_file() {
    let refused = "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 97\r\nconnection: close\r\n\r\n{\"status\":false,\"message\":\"the API key is malformed, unknown or disabled\",\"error\":\"unauthorized\"}";
    let broken = "HTTP/1.1 200 OK\r\ncontent-type: text/csv; charset=utf-8\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n100\r\nmd5,tran\r\nabc";
    let (base, _) = fake(vec![refused, broken]);
    let dir = temp_dir("broken");
    let file = dir.join("out.csv");
    let args = [
        "payments",
        "export",
        "--server",
        &base,
        "-o",
        file.to_str().unwrap(),
    ];
    let o = khqr_with(&args, &[("KHQR_API_KEY", "khqr_sk_wrong")], "");
    assert_eq!(o.status.code(), Some(6));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("401: the API key is malformed, unknown or disabled"),
        "{stderr}"
    );
    assert_eq!(json_of(&o)["error"]["status"], 401);
    assert!(!file.exists());
    let o = khqr_with(&args, &[("KHQR_API_KEY", KEY)], "");
    assert_eq!(
        o.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("broke off"));
    assert!(!file.exists());
    assert!(!dir.join("out.csv.part").exists());
    // Unreachable.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let o = khqr_with(
        &[
            "payments",
            "export",
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "--timeout",
            "3s",
        ],
        &[("KHQR_API_KEY", KEY)],
        "",
    );
    assert_eq!(o.status.code(), Some(6));
    // No key at all: a usage error.
    let o = khqr_with(&["payments", "export", "--server", &base], &[], "");
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).ok();
}
