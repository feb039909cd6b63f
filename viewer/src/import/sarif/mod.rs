//! SARIF 2.1.0 JSON, read in two passes over the file.
//!
//! A SARIF log can hold hundreds of thousands of results, and what they refer to (rules,
//! artifacts, URI bases, invocations) may come before or after them. The first pass reads
//! everything but `results` ([`run::RunMeta`], small); the second streams each `results[]`
//! element, deserialized into a small typed struct, to the sink before reading the next,
//! so memory stays flat. serde_json's recursion limit (128) bounds nesting.
//!
//! What each result becomes follows the spec: rule by `ruleId`, `rule` or `ruleIndex`, in
//! the driver or an extension, hierarchical ids found by their ancestors (§3.27.5–7,
//! §3.52); severity in §3.27.10's order, then CodeQL's `security-severity`; message text,
//! else `id` looked up in the rule's or component's message strings, placeholders filled
//! (§3.11); locations through `artifacts` and `originalUriBaseIds` (§3.4), logical ones
//! by name (§3.33); identity from `fingerprints` / `partialFingerprints` (§3.27.16–17).

mod run;
mod stream;
mod text;

use std::collections::HashMap;
use std::io::Read;

use serde::de::{self, DeserializeSeed};
use serde::Deserialize;

use self::run::{DescriptorRef, LogMeta, LogicalLocation, MessageString, Properties, Rule, RunMeta};
use self::text::ArtifactLocation;
use super::{Finding, ParseError, Sink};
use crate::db::findings::{Location, Severity};

/// Reads the log twice through `open` (metadata, then results) and streams every result
/// into `sink`.
pub fn parse<R: Read>(open: &dyn Fn() -> std::io::Result<R>, sink: &mut dyn Sink) -> Result<(), ParseError> {
    let io = |e: std::io::Error| ParseError::Input(format!("cannot read the file: {e}"));
    let meta: LogMeta =
        serde_json::from_reader(open().map_err(io)?).map_err(|e| ParseError::Input(format!("invalid SARIF: {e}")))?;
    let runs = check(meta)?;
    let mut ctx = Ctx { sink, failed: None, index: 0, runs: &runs };
    let mut de = serde_json::Deserializer::from_reader(open().map_err(io)?);
    let res = stream::LogSeed(&mut ctx).deserialize(&mut de).and_then(|()| de.end());
    match (ctx.failed, res) {
        (Some(e), _) => Err(ParseError::Sink(e)),
        (None, Err(e)) => Err(ParseError::Input(format!("invalid SARIF: {e}"))),
        (None, Ok(())) => Ok(()),
    }
}

/// Refuses what is not a SARIF 2.1.0 log (other tools' JSON formats included) with a
/// message that says which part is missing.
fn check(meta: LogMeta) -> Result<Vec<RunMeta>, ParseError> {
    let not_sarif = |why: String| ParseError::Input(format!("not a SARIF 2.1.0 log: {why}"));
    match meta.version.as_deref() {
        Some("2.1.0") => {}
        Some(v) => return Err(ParseError::Input(format!("unsupported SARIF version {v:?}, need 2.1.0"))),
        None => return Err(not_sarif("missing \"version\"".into())),
    }
    let runs = meta.runs.ok_or_else(|| not_sarif("missing \"runs\"".into()))?;
    runs.into_iter().enumerate().map(|(n, r)| RunMeta::from_raw(r, n).map_err(not_sarif)).collect()
}

pub(super) struct Ctx<'s, 'r> {
    sink: &'s mut dyn Sink,
    /// The sink's error, kept typed while serde unwinds with a generic one.
    failed: Option<super::ImportError>,
    /// Results seen so far, for messages ("result 17: ...").
    index: u64,
    pub(super) runs: &'r [RunMeta],
}

#[derive(Deserialize)]
pub(super) struct SarifResult {
    #[serde(default, rename = "ruleId")]
    rule_id: Option<String>,
    #[serde(default, rename = "ruleIndex")]
    rule_index: Option<i64>,
    #[serde(default)]
    rule: Option<DescriptorRef>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    level: Option<String>,
    message: Message,
    #[serde(default)]
    locations: Option<Vec<SarifLocation>>,
    #[serde(default, rename = "relatedLocations")]
    related_locations: Option<Vec<SarifLocation>>,
    #[serde(default)]
    fingerprints: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, rename = "partialFingerprints")]
    partial_fingerprints: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    taxa: Option<Vec<DescriptorRef>>,
    #[serde(default)]
    properties: Option<Properties>,
    #[serde(default, rename = "codeFlows")]
    code_flows: Option<Vec<CodeFlow>>,
}

/// §3.36 codeFlow: one or more threadFlows (§3.37) of threadFlowLocations (§3.38).
#[derive(Deserialize)]
struct CodeFlow {
    #[serde(default, rename = "threadFlows")]
    thread_flows: Option<Vec<ThreadFlow>>,
}

#[derive(Deserialize)]
struct ThreadFlow {
    #[serde(default)]
    locations: Option<Vec<ThreadFlowLocation>>,
}

#[derive(Deserialize)]
struct ThreadFlowLocation {
    #[serde(default)]
    location: Option<SarifLocation>,
}

#[derive(Deserialize, Default)]
struct Message {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    markdown: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    arguments: Option<Vec<String>>,
}

impl Message {
    /// The message as (text, markdown) (§3.11.7–11). Text: `text`, else the string `id`
    /// names in the rule's `messageStrings`, else in the component's
    /// `globalMessageStrings`, else a markdown form, else the id. Markdown ('' when none):
    /// `markdown`, else the looked-up string's. Placeholders filled from `arguments`.
    fn resolve(self, rule: Option<&Rule>, global: &HashMap<String, MessageString>) -> (String, String) {
        let looked_up =
            self.id.as_deref().and_then(|id| rule.and_then(|r| r.messages.get(id)).or_else(|| global.get(id)));
        let markdown = self.markdown.or_else(|| looked_up.and_then(|m| m.markdown.clone()));
        let text = self
            .text
            .or_else(|| looked_up.and_then(|m| m.text.clone()))
            .or_else(|| markdown.clone())
            .or(self.id)
            .unwrap_or_default();
        let args = self.arguments.as_deref().unwrap_or(&[]);
        (text::format(&text, args), markdown.map(|m| text::format(&m, args)).unwrap_or_default())
    }
}

#[derive(Deserialize)]
struct SarifLocation {
    #[serde(default)]
    id: Option<i64>,
    #[serde(default, rename = "physicalLocation")]
    physical: Option<Physical>,
    #[serde(default, rename = "logicalLocations")]
    logical: Option<Vec<LogicalLocation>>,
    #[serde(default)]
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Physical {
    #[serde(default, rename = "artifactLocation")]
    artifact: Option<ArtifactLocation>,
    #[serde(default)]
    region: Option<Region>,
    #[serde(default, rename = "contextRegion")]
    context_region: Option<Region>,
}

#[derive(Deserialize)]
struct Region {
    #[serde(default, rename = "startLine")]
    start_line: Option<i64>,
    #[serde(default)]
    snippet: Option<Snippet>,
}

#[derive(Deserialize)]
struct Snippet {
    #[serde(default)]
    text: Option<String>,
}

/// SARIF `level` onto the common scale.
fn severity(level: &str) -> Option<Severity> {
    Some(match level {
        "error" => Severity::High,
        "warning" => Severity::Medium,
        "note" => Severity::Low,
        "none" => Severity::Info,
        _ => return None,
    })
}

impl RunMeta {
    /// A location as users know it: the resolved path and line, else the logical
    /// location's fully qualified name; None when it names neither.
    fn location(&self, l: SarifLocation) -> Option<Location> {
        let message = l.message.map(|m| m.resolve(None, &HashMap::new()).0).unwrap_or_default();
        let physical = l.physical.and_then(|p| {
            let a = p.artifact.unwrap_or_default();
            let listed = a.index.and_then(|i| usize::try_from(i).ok()).and_then(|i| self.artifacts.get(i));
            let uri = a.uri.clone().or_else(|| listed.and_then(|x| x.uri.clone()))?;
            let base = a.uri_base_id.clone().or_else(|| listed.and_then(|x| x.uri_base_id.clone()));
            let file = text::uri_to_path(&text::resolve(&uri, base.as_deref(), &self.bases));
            let line = p.region.as_ref().and_then(|r| r.start_line).unwrap_or(0).max(0);
            let snip = |r: Option<Region>| r.and_then(|r| r.snippet).and_then(|s| s.text);
            let snippet = snip(p.region).or_else(|| snip(p.context_region)).unwrap_or_default();
            Some((file, line, snippet))
        });
        let (file, line, snippet) = match physical {
            Some(p) => p,
            None => {
                let l = l.logical?.into_iter().next()?;
                let listed = l.index.and_then(|i| usize::try_from(i).ok()).and_then(|i| self.logical.get(i));
                let name = l
                    .fully_qualified_name
                    .or(l.name)
                    .or_else(|| listed.and_then(|x| x.fully_qualified_name.clone().or(x.name.clone())))?;
                (name, 0, String::new())
            }
        };
        Some(Location { file, line, message, snippet })
    }
}

impl Ctx<'_, '_> {
    pub(super) fn emit<E: de::Error>(&mut self, run: &RunMeta, r: SarifResult) -> Result<(), E> {
        self.index += 1;
        if matches!(r.kind.as_deref(), Some("pass" | "notApplicable")) {
            return Ok(());
        }
        // The rule (§3.27.5–7): by index when given (exact), else by id, in the component
        // the reference names; a driver miss also searches the extensions.
        let rref = r.rule.clone().unwrap_or_default();
        let comp = run.component_of(rref.component.as_ref());
        let component = run.component(comp);
        let by_index =
            r.rule_index.or(rref.index).and_then(|i| usize::try_from(i).ok()).and_then(|i| component.rules.get(i));
        let id = r.rule_id.clone().or(rref.id.clone()).or_else(|| by_index.map(|x| x.id.clone())).unwrap_or_default();
        let (rule, comp) = match by_index.or_else(|| component.find(&id)) {
            Some(x) => (Some(x), comp),
            None if comp.is_none() && !id.is_empty() => run
                .extensions
                .iter()
                .enumerate()
                .find_map(|(i, e)| Some((Some(e.find(&id)?), Some(i))))
                .unwrap_or((None, comp)),
            None => (None, comp),
        };
        // Severity (§3.27.10): level; else `none` for a kind other than fail; else the
        // invocation's override; else the rule's default; else warning.
        let kind_not_fail = r.kind.as_deref().is_some_and(|k| k != "fail");
        let level = r
            .level
            .clone()
            .or_else(|| kind_not_fail.then(|| "none".to_owned()))
            .or_else(|| rule.and_then(|x| run.override_level(comp, &x.id)).map(str::to_owned))
            .or_else(|| rule.and_then(|x| x.level.clone()))
            .unwrap_or_else(|| "warning".to_owned());
        let mut severity = severity(&level).ok_or_else(|| {
            E::custom(format!("result {}: unknown level {level:?} (expected error, warning, note or none)", self.index))
        })?;
        let props = r.properties.unwrap_or_default();
        if !kind_not_fail {
            if let Some(s) = run::security_severity(&props).or(rule.and_then(|x| x.security_severity)) {
                severity = s;
            }
        }
        let mut cwe = rule.map(|x| x.cwe.clone()).unwrap_or_default();
        run::cwe_from_tags(&props, &mut cwe);
        for t in r.taxa.iter().flatten() {
            run::cwe_from_ref(t, &mut cwe);
        }

        let primary: Vec<Location> = r.locations.into_iter().flatten().filter_map(|l| run.location(l)).collect();
        let mut positions = HashMap::new();
        let mut locations = primary;
        for l in r.related_locations.into_iter().flatten() {
            let id = l.id;
            if let Some(loc) = run.location(l) {
                locations.push(loc);
                if let Some(id) = id {
                    positions.entry(id).or_insert(locations.len());
                }
            }
        }
        let global = &run.component(comp).global_messages;
        let (message, markdown) = r.message.resolve(rule, global);
        let message = text::link_locations(&message, &positions);
        let markdown = text::link_locations(&markdown, &positions);
        let identity = match (&r.fingerprints, &r.partial_fingerprints) {
            (Some(f), _) if !f.is_empty() => Some(identity_text("fingerprints", f)),
            (_, Some(p)) if !p.is_empty() => Some(format!("rule={id}\n{}", identity_text("partial", p))),
            _ => None,
        };
        let flows: Vec<Vec<Location>> = r
            .code_flows
            .into_iter()
            .flatten()
            .flat_map(|c| c.thread_flows.into_iter().flatten())
            .map(|t| t.locations.into_iter().flatten().filter_map(|l| run.location(l.location?)).collect::<Vec<_>>())
            .filter(|steps: &Vec<Location>| !steps.is_empty())
            .collect();
        let (file, line, context) =
            locations.first().map(|l| (l.file.clone(), l.line, l.snippet.trim().to_owned())).unwrap_or_default();
        let finding = Finding {
            tool: run.tool.clone(),
            rule: id,
            category: String::new(),
            severity,
            file,
            line,
            message,
            markdown,
            locations,
            identity,
            context,
            cwe,
            flows,
        };
        self.sink.finding(finding).map_err(|e| {
            self.failed = Some(e);
            E::custom("import aborted")
        })
    }
}

/// Fingerprint pairs as one text (keys sorted by the BTreeMap).
fn identity_text(kind: &str, pairs: &std::collections::BTreeMap<String, String>) -> String {
    let mut s = format!("{kind}\n");
    for (k, v) in pairs {
        s.push_str(k);
        s.push('=');
        s.push_str(v);
        s.push('\n');
    }
    s
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
        parse(&|| Ok(json.as_bytes()), &mut sink)?;
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
