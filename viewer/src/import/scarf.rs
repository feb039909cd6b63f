//! SCARF XML (SWAMP Common Assessment Results Format), parsed as a stream of events.
//!
//! Shape used (everything else, e.g. `<Metric>` and `<BugSummary>`, is skipped):
//! ```text
//! <AnalyzerReport tool_name="cppcheck" tool_version=".." ...>
//!   <BugInstance id="1">
//!     <BugLocations>
//!       <Location id="1" primary="true">
//!         <SourceFile>src/a.c</SourceFile><StartLine>10</StartLine>
//!         <Explanation>..</Explanation>
//!       </Location>
//!     </BugLocations>
//!     <BugGroup>..</BugGroup><BugCode>..</BugCode><BugSeverity>..</BugSeverity>
//!     <BugMessage>..</BugMessage>
//!   </BugInstance>
//! </AnalyzerReport>
//! ```
//! Safety: a `<!DOCTYPE>` is refused outright and only the five predefined entities and
//! character references are expanded, so entity-expansion bombs cannot work; element
//! nesting is capped by `Limits::max_xml_depth`, and text is only collected inside a
//! `<BugInstance>` and only up to `Limits::max_field_bytes`.

use std::io::BufRead;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::{Finding, ParseError, Sink};
use crate::config::Limits;
use crate::db::findings::{Location, Severity};

/// Maps the many words and numbers tools put into `<BugSeverity>` onto the common scale.
/// Numbers follow the "1 is most severe" convention (PMD priority, FindBugs priority).
/// Unknown or absent values become `medium`.
pub fn severity(s: &str) -> Severity {
    match s.trim().to_ascii_lowercase().as_str() {
        "critical" | "blocker" | "fatal" | "very high" => Severity::Critical,
        "high" | "error" | "major" | "severe" | "1" => Severity::High,
        "medium" | "warning" | "moderate" | "normal" | "2" | "3" => Severity::Medium,
        "low" | "minor" | "style" | "performance" | "portability" | "convention" | "refactor" | "4" => Severity::Low,
        "info" | "information" | "informational" | "note" | "trivial" | "5" => Severity::Info,
        _ => Severity::Medium,
    }
}

#[derive(Default)]
struct Bug {
    id: String,
    group: String,
    code: String,
    severity: String,
    message: String,
    cwe: Vec<String>,
    locations: Vec<(bool, Location)>,
}

#[derive(Default)]
struct Loc {
    primary: bool,
    file: String,
    line: i64,
    message: String,
}

fn input(msg: impl Into<String>) -> ParseError {
    ParseError::Input(msg.into())
}

fn attr(e: &BytesStart, name: &str) -> Result<Option<String>, ParseError> {
    for a in e.attributes() {
        let a = a.map_err(|e| input(format!("invalid XML attribute: {e}")))?;
        if a.key.as_ref() == name {
            let v = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| input(format!("invalid XML attribute {name}: {e}")))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

struct State<'a> {
    limits: &'a Limits,
    sink: &'a mut dyn Sink,
    tool: Option<String>,
    bug: Option<Bug>,
    loc: Option<Loc>,
    /// Text of the innermost open element (only collected inside a BugInstance).
    text: String,
}

impl State<'_> {
    fn open(&mut self, name: &str, e: &BytesStart, depth: usize) -> Result<(), ParseError> {
        if depth == 0 {
            if name != "AnalyzerReport" {
                return Err(input(format!("root element is <{name}>, not <AnalyzerReport>: not a SCARF file")));
            }
            let tool = attr(e, "tool_name")?.filter(|t| !t.trim().is_empty());
            self.tool = Some(tool.ok_or_else(|| input("<AnalyzerReport> has no tool_name"))?);
        } else if name == "BugInstance" && depth == 1 {
            self.bug = Some(Bug { id: attr(e, "id")?.unwrap_or_default(), ..Bug::default() });
        } else if name == "Location" && self.bug.is_some() {
            self.loc = Some(Loc { primary: attr(e, "primary")?.as_deref() == Some("true"), ..Loc::default() });
        }
        self.text.clear();
        Ok(())
    }

    fn close(&mut self, name: &str) -> Result<(), ParseError> {
        let text = std::mem::take(&mut self.text);
        let Some(bug) = self.bug.as_mut() else { return Ok(()) };
        if let Some(loc) = self.loc.as_mut() {
            match name {
                "SourceFile" => loc.file = text.trim().to_owned(),
                "StartLine" => {
                    loc.line = text.trim().parse().map_err(|_| {
                        input(format!("BugInstance id={:?}: StartLine {:?} is not a line number", bug.id, text.trim()))
                    })?
                }
                "Explanation" => loc.message = text.trim().to_owned(),
                "Location" => {
                    let l = self.loc.take().unwrap_or_default();
                    bug.locations.push((
                        l.primary,
                        Location { file: l.file, line: l.line, message: l.message, snippet: String::new() },
                    ));
                }
                _ => {}
            }
            return Ok(());
        }
        match name {
            "BugMessage" => bug.message = text.trim().to_owned(),
            "BugGroup" => bug.group = text.trim().to_owned(),
            "BugCode" => bug.code = text.trim().to_owned(),
            "CweId" => {
                let n = text.trim().trim_start_matches("CWE-").trim_start_matches('0');
                if !n.is_empty()
                    && n.len() <= 6
                    && n.bytes().all(|b| b.is_ascii_digit())
                    && !bug.cwe.iter().any(|c| c == n)
                {
                    bug.cwe.push(n.to_owned());
                }
            }
            "BugSeverity" => bug.severity = text,
            "BugInstance" => {
                let bug = self.bug.take().unwrap_or_default();
                self.emit(bug)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn emit(&mut self, mut bug: Bug) -> Result<(), ParseError> {
        // Primary location first; without a primary flag the first one stands in.
        if let Some(p) = bug.locations.iter().position(|(primary, _)| *primary) {
            bug.locations[..=p].rotate_right(1);
        }
        let locations: Vec<Location> = bug.locations.into_iter().map(|(_, l)| l).collect();
        let (file, line) = locations.first().map(|l| (l.file.clone(), l.line)).unwrap_or_default();
        let rule = if bug.code.is_empty() { bug.group.clone() } else { bug.code };
        let finding = Finding {
            tool: self.tool.clone().unwrap_or_default(),
            rule,
            category: bug.group,
            severity: severity(&bug.severity),
            file,
            line,
            message: bug.message,
            markdown: String::new(),
            locations,
            identity: None,
            context: String::new(),
            cwe: bug.cwe,
            flows: Vec::new(),
        };
        self.sink.finding(finding).map_err(ParseError::Sink)
    }

    fn push_text(&mut self, s: &str) {
        if self.bug.is_some() && self.text.len() < self.limits.max_field_bytes {
            self.text.push_str(s);
        }
    }
}

/// Streams every `<BugInstance>` into `sink`.
pub fn parse(reader: impl BufRead, limits: &Limits, sink: &mut dyn Sink) -> Result<(), ParseError> {
    let mut xml = Reader::from_reader(reader);
    let mut st = State { limits, sink, tool: None, bug: None, loc: None, text: String::new() };
    let mut stack: Vec<String> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let event = xml
            .read_event_into(&mut buf)
            .map_err(|e| input(format!("invalid XML near byte {}: {e}", xml.error_position())))?;
        match event {
            Event::Start(_) | Event::Empty(_) if st.tool.is_some() && stack.is_empty() => {
                return Err(input("content after </AnalyzerReport>"));
            }
            Event::Start(e) => {
                if stack.len() >= limits.max_xml_depth {
                    return Err(input(format!("XML nested deeper than {} elements", limits.max_xml_depth)));
                }
                let name = e.local_name().as_ref().to_owned();
                st.open(&name, &e, stack.len())?;
                stack.push(name);
            }
            Event::Empty(e) => {
                let name = e.local_name().as_ref().to_owned();
                st.open(&name, &e, stack.len())?;
                st.close(&name)?;
            }
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                st.close(&name)?;
            }
            Event::Text(t) => st.push_text(&t.xml10_content()),
            Event::CData(t) => st.push_text(&t.xml10_content()),
            Event::GeneralRef(r) => {
                if r.is_char_ref() {
                    let c = r.resolve_char_ref().map_err(|e| input(format!("invalid character reference: {e}")))?;
                    st.push_text(c.unwrap_or('\u{FFFD}').encode_utf8(&mut [0; 4]));
                } else {
                    let name: &str = &r;
                    let value = resolve_predefined_entity(name)
                        .ok_or_else(|| input(format!("undefined XML entity &{name};")))?;
                    st.push_text(value);
                }
            }
            Event::DocType(_) => return Err(input("<!DOCTYPE> is not allowed in SCARF")),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if st.tool.is_none() {
        return Err(input("no <AnalyzerReport> element: not a SCARF file"));
    }
    if !stack.is_empty() {
        return Err(input("the XML ends before </AnalyzerReport>"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(xml: &str) -> Result<Vec<Finding>, ParseError> {
        let mut out = Vec::new();
        let mut sink = |f: Finding| {
            out.push(f);
            Ok(())
        };
        parse(xml.as_bytes(), &Limits::default(), &mut sink)?;
        Ok(out)
    }

    #[test]
    fn primary_location_first_and_entities() {
        let xml = r#"<?xml version="1.0"?><AnalyzerReport tool_name="cppcheck"><BugInstance id="7">
            <BugLocations><Location id="1" primary="false"><SourceFile>b.c</SourceFile><StartLine>1</StartLine></Location>
            <Location id="2" primary="true"><SourceFile>a.c</SourceFile><StartLine>9</StartLine>
            <Explanation>x &lt; y &#x263A;</Explanation></Location></BugLocations>
            <BugCode>nullPointer</BugCode><BugGroup>error</BugGroup><BugSeverity>error</BugSeverity>
            <BugMessage><![CDATA[p <may> be]]> null &amp; void</BugMessage></BugInstance>
            <BugSummary><BugCategory group="error" code="nullPointer" count="1"/></BugSummary></AnalyzerReport>"#;
        let f = collect(xml).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].file.as_str(), f[0].line), ("a.c", 9));
        assert_eq!(f[0].locations[1].file, "b.c");
        assert_eq!(f[0].locations[0].message, "x < y ☺");
        assert_eq!(f[0].message, "p <may> be null & void");
        assert_eq!((f[0].rule.as_str(), f[0].severity), ("nullPointer", Severity::High));
    }

    #[test]
    fn refuses_doctype_unknown_entities_depth_and_bad_lines() {
        let deep = format!("<AnalyzerReport tool_name=\"t\">{}", "<a>".repeat(100));
        for (xml, needle) in [
            ("<!DOCTYPE x [<!ENTITY a \"b\">]><AnalyzerReport tool_name=\"t\"/>", "DOCTYPE"),
            ("<AnalyzerReport tool_name=\"t\"><BugInstance><BugMessage>&a;</BugMessage></BugInstance></AnalyzerReport>", "entity"),
            (deep.as_str(), "deeper"),
            ("<AnalyzerReport tool_name=\"t\"><BugInstance id=\"3\"><BugLocations><Location><StartLine>x</StartLine></Location></BugLocations></BugInstance></AnalyzerReport>", "StartLine"),
            ("<BugCollection/>", "not a SCARF"),
            ("<AnalyzerReport/>", "tool_name"),
            ("<AnalyzerReport tool_name=\"t\"><BugInstance>", "ends before"),
        ] {
            match collect(xml) {
                Err(ParseError::Input(m)) => assert!(m.contains(needle), "{m:?} should mention {needle}"),
                other => panic!("{xml}: expected an input error, got {:?}", other.map(|v| v.len())),
            }
        }
    }

    #[test]
    fn severity_words() {
        assert_eq!(severity(" Critical "), Severity::Critical);
        assert_eq!(severity("style"), Severity::Low);
        assert_eq!(severity("5"), Severity::Info);
        assert_eq!(severity("whatever"), Severity::Medium);
    }
}
