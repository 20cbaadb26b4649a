//! `wsbench URL CONNECTIONS SECONDS`: each connection sends a 13-byte text
//! message and waits for its echo, again and again; prints one JSON line:
//! round trips per second and the p50 and p99 round trip in µs. Errors are
//! counted, not fatal, so a peer that drops connections shows it.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::{connect, Message};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: wsbench URL CONNECTIONS SECONDS");
        std::process::exit(2);
    }
    let url = args[1].clone();
    let conns: usize = args[2].parse().expect("CONNECTIONS");
    let seconds: f64 = args[3].parse().expect("SECONDS");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || run(&url, deadline))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for thread in threads {
        match thread.join() {
            Ok((mut l, e)) => {
                latencies.append(&mut l);
                errors += e;
            }
            Err(_) => errors += 1,
        }
    }
    latencies.sort_unstable();
    let pct = |p: f64| latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "{{\"rps\": {:.1}, \"p50\": {}, \"p99\": {}, \"errors\": {}}}",
        latencies.len() as f64 / seconds,
        pct(0.50),
        pct(0.99),
        errors
    );
}

/// One connection's round trips (µs each) and errors.
fn run(url: &str, deadline: Instant) -> (Vec<u64>, u64) {
    let mut latencies = Vec::with_capacity(100_000);
    let (mut ws, _) = match connect(url) {
        Ok(pair) => pair,
        Err(_) => return (latencies, 1),
    };
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        let _ = TcpStream::set_nodelay(s, true);
    }
    while Instant::now() < deadline {
        let start = Instant::now();
        if ws.send(Message::text("Hello, world!")).is_err() {
            return (latencies, 1);
        }
        match ws.read() {
            Ok(Message::Text(_)) => latencies.push(start.elapsed().as_micros() as u64),
            _ => return (latencies, 1),
        }
    }
    let _ = ws.close(None);
    let _ = ws.flush();
    (latencies, 0)
}
