//! Helpers shared by the CLI tests.

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// Runs khqr with `args`, stdin closed.
pub fn khqr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_khqr"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run khqr")
}

pub fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

/// Runs khqr with `env` set (`BAKONG_TOKEN` removed unless given) and `stdin`.
pub fn khqr_with(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_khqr"));
    cmd.args(args)
        .env_remove("BAKONG_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run khqr");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
