//! The cost of the first card in a process against a warm one.
//!
//! Each run is a fresh process that draws the default card (scale 2) once, then
//! again, then 50 more times, and prints the first, the second and the median
//! warm time in milliseconds, both wall-clock and the thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`, on Unix). The difference between the first and a
//! warm card is what a one-shot program (the `khqr` CLI) pays once: parsing the
//! fonts' table directories, first touches of the embedded font bytes and of
//! fresh heap pages. On a busy machine one preemption adds milliseconds of wall
//! time to a single card; the CPU time is not inflated by waiting, so it is the
//! figure that holds there.
//!
//! ```text
//! cargo bench --bench card_first --features card [-- OPTIONS]
//!   --runs N   fresh processes to run (default 11); prints each, then the medians
//!   --once     one process only: this one (what each run does)
//!   --khmer    a KHR card with a Khmer merchant name (Kantumruy Pro and Nunito
//!              Sans both used); the default is the benches' USD card
//! ```
//!
//! A single run is at the mercy of the scheduler on a busy machine (one
//! preemption costs several milliseconds); the median over fresh processes is
//! the figure to quote.

use std::process::Command;
use std::time::Instant;

use bakong_khqr::render::{card_png, CardOptions};
use bakong_khqr::{Currency, Request};

/// This thread's CPU time in milliseconds (NaN where there is no such clock).
#[cfg(unix)]
fn cpu_ms() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(t.tv_nsec).unwrap_or(0);
    std::time::Duration::new(secs, nanos).as_secs_f64() * 1e3
}

#[cfg(not(unix))]
fn cpu_ms() -> f64 {
    f64::NAN
}

/// Wall and CPU milliseconds of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, [f64; 2]) {
    let (t, c) = (Instant::now(), cpu_ms());
    let out = f();
    let wall = t.elapsed().as_secs_f64() * 1e3;
    (out, [wall, cpu_ms() - c])
}

/// First card, second card, median of 50 warm cards, each as wall and CPU
/// milliseconds.
type Times = [[f64; 2]; 3];

/// The three times and the PNG's size in bytes.
fn once(khmer: bool) -> Result<(Times, usize), Box<dyn std::error::Error>> {
    let khqr = if khmer {
        Request::individual("jonhsmith@nbcq", "ហាងកាហ្វេ ភ្នំពេញ")
            .currency(Currency::Khr)
            .amount("1250000")
    } else {
        Request::individual("jonhsmith@nbcq", "Jonh Smith")
            .currency(Currency::Usd)
            .amount("12.5")
    }
    .merchant_city("Phnom Penh")
    .expires_at_ms(9_999_999_999_999)
    .bill_number("INV-2024-0001")
    .store_label("Shop 1")
    .terminal_label("T1")
    .generate(1_700_000_000_000)?;
    let payload = khqr.as_str();
    let options = CardOptions::default();

    let (first, first_t) = timed(|| card_png(payload, &options));
    let first = first?;
    let (second, second_t) = timed(|| card_png(payload, &options));
    assert_eq!(first, second?, "the same card twice gives the same bytes");
    let (mut wall, mut cpu) = (Vec::with_capacity(50), Vec::with_capacity(50));
    for _ in 0..50 {
        let (png, [w, c]) = timed(|| card_png(payload, &options));
        assert_eq!(png?.len(), first.len());
        wall.push(w);
        cpu.push(c);
    }
    let warm = [median(&mut wall), median(&mut cpu)];
    Ok(([first_t, second_t, warm], first.len()))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let khmer = args.iter().any(|a| a == "--khmer");
    if args.iter().any(|a| a == "--once") {
        let (t, bytes) = once(khmer)?;
        let cells: Vec<String> = t.iter().flatten().map(|v| format!("{v:.3}")).collect();
        println!("{} {bytes}", cells.join(" "));
        return Ok(());
    }
    let runs: usize = match args.iter().position(|a| a == "--runs") {
        Some(i) => args.get(i + 1).ok_or("--runs N")?.parse()?,
        None => 11,
    };
    let me = std::env::current_exe()?;
    // first, second, warm, first - warm; wall then CPU.
    let mut cols: [[Vec<f64>; 2]; 4] = Default::default();
    let mut bytes = String::new();
    println!("ms, wall / CPU:  first        second       warm median  first - warm");
    for _ in 0..runs {
        let mut child = Command::new(&me);
        child.arg("--once");
        if khmer {
            child.arg("--khmer");
        }
        let out = child.output()?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
        }
        let line = String::from_utf8(out.stdout)?;
        let f: Vec<&str> = line.split_whitespace().collect();
        let v = |i: usize| {
            f.get(i)
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        f.get(6).copied().unwrap_or_default().clone_into(&mut bytes);
        let row = [0, 1].map(|k| [v(k), v(2 + k), v(4 + k), v(k) - v(4 + k)]);
        println!(
            "{:>15}  {:5.2} / {:4.2}  {:5.2} / {:4.2}  {:5.2} / {:4.2}  {:5.2} / {:4.2}",
            "",
            row[0][0],
            row[1][0],
            row[0][1],
            row[1][1],
            row[0][2],
            row[1][2],
            row[0][3],
            row[1][3]
        );
        for (i, col) in cols.iter_mut().enumerate() {
            for (k, c) in col.iter_mut().enumerate() {
                c.push(row[k][i]);
            }
        }
    }
    let m = cols.map(|col| col.map(|mut v| median(&mut v)));
    println!(
        "median of {runs} processes ({}, scale 2, {bytes} bytes of PNG), wall / CPU ms: \
         first {:.2} / {:.2}, second {:.2} / {:.2}, warm {:.2} / {:.2}, \
         first - warm {:.2} / {:.2}",
        if khmer { "KHR, Khmer name" } else { "USD" },
        m[0][0],
        m[0][1],
        m[1][0],
        m[1][1],
        m[2][0],
        m[2][1],
        m[3][0],
        m[3][1]
    );
    Ok(())
}
