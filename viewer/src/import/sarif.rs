//! SARIF 2.1.0 JSON, parsed as a stream.
//!
//! A SARIF log can hold hundreds of thousands of results. Instead of building a
//! `serde_json::Value` (several times the file size in memory), serde seeds walk
//! `runs[]` and hand each `results[]` element, deserialized into a small typed struct, to
//! the sink before reading the next. Only when a run lists `results` before `tool` (legal
//! JSON, unusual SARIF) are that run's results buffered until the tool name is known.
//! serde_json's recursion limit (128) bounds nesting.
//!
//! Used: `version`, `runs[].tool.driver.{name,rules[].id,rules[].defaultConfiguration.level}`,
//! `results[].{ruleId,rule.id,kind,level,message.{text,markdown,id},locations[],relatedLocations[]}`
//! with `physicalLocation.artifactLocation.uri` + `region.startLine`. Everything else is
//! skipped without being stored.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{Finding, ParseError, Sink};
use crate::db::findings::{Location, Severity};

/// Streams every result of every run into `sink`.
pub fn parse(reader: impl Read, sink: &mut dyn Sink) -> Result<(), ParseError> {
    let mut ctx = Ctx { sink, failed: None, index: 0 };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let res = LogSeed(&mut ctx).deserialize(&mut de).and_then(|()| de.end());
    match (ctx.failed, res) {
        (Some(e), _) => Err(ParseError::Sink(e)),
        (None, Err(e)) => Err(ParseError::Input(format!("invalid SARIF: {e}"))),
        (None, Ok(())) => Ok(()),
    }
}

struct Ctx<'s> {
    sink: &'s mut dyn Sink,
    /// The sink's error, kept typed while serde unwinds with a generic one.
    failed: Option<super::ImportError>,
    /// Results seen so far, for messages ("result 17: ...").
    index: u64,
}

#[derive(Deserialize)]
struct Tool {
    driver: Driver,
}

#[derive(Deserialize)]
struct Driver {
    name: String,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "defaultConfiguration")]
    default_configuration: Option<RuleConfig>,
}

#[derive(Deserialize)]
struct RuleConfig {
    #[serde(default)]
    level: Option<String>,
}

#[derive(Deserialize)]
struct SarifResult {
    #[serde(default, rename = "ruleId")]
    rule_id: Option<String>,
    #[serde(default)]
    rule: Option<RuleRef>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    level: Option<String>,
    message: Message,
    #[serde(default)]
    locations: Option<Vec<SarifLocation>>,
    #[serde(default, rename = "relatedLocations")]
    related_locations: Option<Vec<SarifLocation>>,
}

#[derive(Deserialize)]
struct RuleRef {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize, Default)]
struct Message {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    markdown: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

impl Message {
    fn into_text(self) -> String {
        self.text.or(self.markdown).or(self.id).unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct SarifLocation {
    #[serde(default, rename = "physicalLocation")]
    physical: Option<Physical>,
    #[serde(default)]
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Physical {
    #[serde(default, rename = "artifactLocation")]
    artifact: Option<Artifact>,
    #[serde(default)]
    region: Option<Region>,
}

#[derive(Deserialize)]
struct Artifact {
    #[serde(default)]
    uri: Option<String>,
}

#[derive(Deserialize)]
struct Region {
    #[serde(default, rename = "startLine")]
    start_line: Option<u32>,
}

/// A run's tool: its name and the default level of each rule.
struct RunTool {
    name: String,
    default_levels: HashMap<String, String>,
}

impl From<Tool> for RunTool {
    fn from(t: Tool) -> RunTool {
        let default_levels =
            t.driver.rules.into_iter().filter_map(|r| Some((r.id?, r.default_configuration?.level?))).collect();
        RunTool { name: t.driver.name, default_levels }
    }
}

/// SARIF `level` onto the common scale. `warning` is SARIF's default when absent.
fn severity(level: &str) -> Option<Severity> {
    Some(match level {
        "error" => Severity::High,
        "warning" => Severity::Medium,
        "note" => Severity::Low,
        "none" => Severity::Info,
        _ => return None,
    })
}

/// Turns an artifact URI into the path users know: strips `file://`, decodes `%XX`.
fn uri_to_path(uri: &str) -> String {
    let uri = uri.strip_prefix("file://").unwrap_or(uri);
    if !uri.contains('%') {
        return uri.to_owned();
    }
    let bytes = uri.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| uri.to_owned())
}

impl Ctx<'_> {
    fn emit<E: de::Error>(&mut self, tool: &RunTool, r: SarifResult) -> Result<(), E> {
        self.index += 1;
        if matches!(r.kind.as_deref(), Some("pass" | "notApplicable")) {
            return Ok(());
        }
        let rule = r.rule_id.or(r.rule.and_then(|x| x.id)).unwrap_or_default();
        let level = r.level.as_deref().or(tool.default_levels.get(&rule).map(String::as_str)).unwrap_or("warning");
        let severity = severity(level).ok_or_else(|| {
            E::custom(format!("result {}: unknown level {level:?} (expected error, warning, note or none)", self.index))
        })?;
        let locations: Vec<Location> = r
            .locations
            .into_iter()
            .chain(r.related_locations)
            .flatten()
            .filter_map(|l| {
                let p = l.physical?;
                let file = uri_to_path(&p.artifact?.uri?);
                let line = p.region.and_then(|r| r.start_line).unwrap_or(0) as i64;
                Some(Location { file, line, message: l.message.map(Message::into_text).unwrap_or_default() })
            })
            .collect();
        let (file, line) = locations.first().map(|l| (l.file.clone(), l.line)).unwrap_or_default();
        let finding = Finding {
            tool: tool.name.clone(),
            rule,
            category: String::new(),
            severity,
            file,
            line,
            message: r.message.into_text(),
            locations,
        };
        self.sink.finding(finding).map_err(|e| {
            self.failed = Some(e);
            E::custom("import aborted")
        })
    }
}

struct LogSeed<'a, 's>(&'a mut Ctx<'s>);

impl<'de> DeserializeSeed<'de> for LogSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LogSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a SARIF log object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut version: Option<String> = None;
        let mut runs = false;
        let check = |v: &Option<String>| match v.as_deref() {
            Some("2.1.0") => Ok(()),
            Some(v) => Err(de::Error::custom(format!("unsupported SARIF version {v:?}, need 2.1.0"))),
            None => Err(de::Error::custom("missing \"version\"")),
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "version" => version = Some(map.next_value()?),
                "runs" => {
                    // Fail early when the version came first and is wrong.
                    if version.is_some() {
                        check(&version)?;
                    }
                    map.next_value_seed(RunsSeed(&mut *self.0))?;
                    runs = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        check(&version)?;
        if !runs {
            return Err(de::Error::custom("missing \"runs\""));
        }
        Ok(())
    }
}

struct RunsSeed<'a, 's>(&'a mut Ctx<'s>);

impl<'de> DeserializeSeed<'de> for RunsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RunsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of runs")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(RunSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct RunSeed<'a, 's>(&'a mut Ctx<'s>);

impl<'de> DeserializeSeed<'de> for RunSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RunSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a run object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut tool: Option<RunTool> = None;
        let mut pending: Option<Vec<SarifResult>> = None;
        while let Some(key) = map.next_key::<String>()? {
            match (key.as_str(), &tool) {
                ("tool", _) => tool = Some(map.next_value::<Tool>()?.into()),
                ("results", Some(t)) => map.next_value_seed(ResultsSeed { ctx: &mut *self.0, tool: t })?,
                ("results", None) => pending = map.next_value::<Option<Vec<SarifResult>>>()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let tool = tool.ok_or_else(|| de::Error::custom("a run has no tool.driver.name"))?;
        for r in pending.into_iter().flatten() {
            self.0.emit(&tool, r)?;
        }
        Ok(())
    }
}

struct ResultsSeed<'a, 's, 't> {
    ctx: &'a mut Ctx<'s>,
    tool: &'t RunTool,
}

impl<'de> DeserializeSeed<'de> for ResultsSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // `any` so that `"results": null` (a run that produced no result list) is accepted.
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ResultsSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of results or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(r) = seq.next_element::<SarifResult>()? {
            self.ctx.emit(self.tool, r)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(json: &str) -> Result<Vec<Finding>, ParseError> {
        let mut out = Vec::new();
        let mut sink = |f: Finding| {
            out.push(f);
            Ok(())
        };
        parse(json.as_bytes(), &mut sink)?;
        Ok(out)
    }

    #[test]
    fn results_before_tool_and_rule_default_levels() {
        let json = r#"{"runs":[{"results":[{"ruleId":"R1","message":{"text":"m"},
            "locations":[{"physicalLocation":{"artifactLocation":{"uri":"file://src/a%20b.c"},"region":{"startLine":3}}}]}],
            "tool":{"driver":{"name":"T","rules":[{"id":"R1","defaultConfiguration":{"level":"error"}}]}}}],
            "version":"2.1.0"}"#;
        let f = collect(json).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].tool.as_str(), f[0].file.as_str(), f[0].line), ("T", "src/a b.c", 3));
        assert_eq!(f[0].severity, Severity::High);
    }

    #[test]
    fn rejects_wrong_version_bad_level_and_missing_message() {
        let base = |v: &str, r: &str| {
            format!(r#"{{"version":"{v}","runs":[{{"tool":{{"driver":{{"name":"T"}}}},"results":[{r}]}}]}}"#)
        };
        for (json, needle) in [
            (base("2.0.0", r#"{"message":{"text":"m"}}"#), "version"),
            (base("2.1.0", r#"{"level":"fatal","message":{"text":"m"}}"#), "unknown level"),
            (base("2.1.0", r#"{"ruleId":"x"}"#), "message"),
            ("[1,2]".to_string(), "invalid SARIF"),
        ] {
            match collect(&json) {
                Err(ParseError::Input(m)) => assert!(m.contains(needle), "{m} should mention {needle}"),
                other => panic!("{json}: expected an input error, got {other:?}"),
            }
        }
    }

    #[test]
    fn skips_passing_results_and_accepts_null_results() {
        let json = r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"A"}},"results":null},
            {"tool":{"driver":{"name":"B"}},"results":[{"kind":"pass","message":{"text":"ok"}},{"message":{"id":"msg1"}}]}]}"#;
        let f = collect(json).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].tool.as_str(), f[0].message.as_str(), f[0].severity), ("B", "msg1", Severity::Medium));
    }
}
