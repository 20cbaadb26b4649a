//! `wsbench URL CONNECTIONS SECONDS [SIZE [text|binary]]`: each connection
//! sends a message (13 bytes of text unless SIZE says otherwise) and waits
//! for its echo, again and again; prints one JSON line: round trips per
//! second and the p50 and p99 round trip in µs. Errors are counted, not
//! fatal, so a peer that drops connections shows it. The messages go
//! uncompressed: tungstenite offers no permessage-deflate.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::Message;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !(4..=6).contains(&args.len()) {
        eprintln!("usage: wsbench URL CONNECTIONS SECONDS [SIZE [text|binary]]");
        std::process::exit(2);
    }
    let size: usize = args.get(4).map_or(13, |s| s.parse().expect("SIZE"));
    let binary = args.get(5).is_some_and(|k| k == "binary");
    // Autobahn's 9.* payload, for sizes past the greeting.
    let text: String = if size == 13 { "Hello, world!".into() } else { "BAsd7&jh23".chars().cycle().take(size).collect() };
    let message = if binary { Message::binary(text.into_bytes()) } else { Message::text(text) };
    let url = args[1].clone();
    let conns: usize = args[2].parse().expect("CONNECTIONS");
    let seconds: f64 = args[3].parse().expect("SECONDS");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let url = url.clone();
            let message = message.clone();
            std::thread::spawn(move || run(&url, deadline, message))
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
fn run(url: &str, deadline: Instant, message: Message) -> (Vec<u64>, u64) {
    let mut latencies = Vec::with_capacity(100_000);
    let config = tungstenite::protocol::WebSocketConfig::default().max_message_size(None).max_frame_size(None);
    let (mut ws, _) = match tungstenite::client::connect_with_config(url, Some(config), 3) {
        Ok(pair) => pair,
        Err(_) => return (latencies, 1),
    };
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        let _ = TcpStream::set_nodelay(s, true);
    }
    while Instant::now() < deadline {
        let start = Instant::now();
        if ws.send(message.clone()).is_err() {
            return (latencies, 1);
        }
        match ws.read() {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) if m.len() == message.len() => {
                latencies.push(start.elapsed().as_micros() as u64)
            }
            _ => return (latencies, 1),
        }
    }
    let _ = ws.close(None);
    let _ = ws.flush();
    (latencies, 0)
}
