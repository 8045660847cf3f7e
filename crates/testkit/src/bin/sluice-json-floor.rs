//! The floor a benchmark compares sluice with: `serde_json` parse into a
//! `serde_json::Value` and serialise back, per NDJSON line, on one core.
//! `sluice-json-floor FILE...` prints `<lines> <seconds> <lines/s>`.

use std::time::Instant;

fn main() {
    let files: Vec<Vec<u8>> = std::env::args()
        .skip(1)
        .map(|path| std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}")))
        .collect();
    let lines: Vec<&[u8]> =
        files.iter().flat_map(|f| f.split(|b| *b == b'\n')).filter(|l| !l.is_empty()).collect();
    let started = Instant::now();
    let mut bytes = 0_usize;
    let mut out = Vec::with_capacity(64 * 1024);
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_slice(line).unwrap_or_else(|e| panic!("not JSON: {e}"));
        out.clear();
        serde_json::to_writer(&mut out, &value).unwrap_or_else(|e| panic!("serialise: {e}"));
        bytes += out.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    assert!(bytes > 0, "no input");
    println!("{} {seconds:.4} {:.0}", lines.len(), lines.len() as f64 / seconds);
}
