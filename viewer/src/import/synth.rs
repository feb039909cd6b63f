//! Synthetic SARIF for tests and benchmarks (`examples/gen_sarif.rs`).
//!
//! Written straight to a `Write`, one result at a time, so a 50,000-finding file costs no
//! memory to produce. Findings are spread over `tools` runs and the five levels, with
//! distinct (file, line) pairs so none collapse into one fingerprint.

use std::io::{self, Write};

/// Writes a SARIF 2.1.0 log with `findings` results spread over `tools` runs.
pub fn write_sarif(mut out: impl Write, findings: usize, tools: usize) -> io::Result<()> {
    let tools = tools.max(1);
    const LEVELS: [&str; 4] = ["error", "warning", "note", "none"];
    write!(out, r#"{{"version":"2.1.0","$schema":"https://json.schemastore.org/sarif-2.1.0.json","runs":["#)?;
    for t in 0..tools {
        if t > 0 {
            out.write_all(b",")?;
        }
        write!(out, r#"{{"tool":{{"driver":{{"name":"synth-tool-{t}","version":"1.0"}}}},"results":["#)?;
        let mut first = true;
        for i in (t..findings).step_by(tools) {
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            write!(
                out,
                r#"{{"ruleId":"RULE{r:03}","level":"{lvl}","message":{{"text":"synthetic finding {i}: value may be used uninitialised"}},"locations":[{{"physicalLocation":{{"artifactLocation":{{"uri":"src/module{m}/file{f}.c"}},"region":{{"startLine":{line}}}}}}}]}}"#,
                r = i % 97,
                lvl = LEVELS[i % LEVELS.len()],
                m = i % 13,
                f = i % 101,
                line = i + 1,
            )?;
        }
        out.write_all(b"]}")?;
    }
    out.write_all(b"]}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{sarif, Finding};

    #[test]
    fn parses_back_to_the_requested_count() {
        let mut buf = Vec::new();
        write_sarif(&mut buf, 1000, 3).unwrap();
        let mut tools = std::collections::BTreeMap::new();
        let mut sink = |f: Finding| {
            *tools.entry(f.tool).or_insert(0) += 1;
            Ok(())
        };
        sarif::parse(&|| Ok(buf.as_slice()), &mut sink).unwrap();
        assert_eq!(tools.values().sum::<i32>(), 1000);
        assert_eq!(tools.len(), 3);
    }
}
