//! Writes a synthetic SARIF file for load tests:
//! `cargo run -p viewer --example gen_sarif -- 50000 3 > big.sarif` (findings, tools).

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let findings = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let tools = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    viewer::import::synth::write_sarif(out, findings, tools)
}
