//! What a run says about its results, read in a first pass over the file: the tool and its
//! rules (driver and extensions, §3.19, §3.49), `artifacts` (§3.24), `originalUriBaseIds`
//! (§3.14.14), rule configuration overrides of the invocations (§3.20.5) and the run's
//! logical locations (§3.33). `results` are skipped here; the second pass streams them.

use std::collections::HashMap;

use serde::Deserialize;

use super::text::ArtifactLocation;
use crate::db::findings::Severity;

/// The whole log as the first pass reads it: everything but results.
#[derive(Deserialize)]
pub struct LogMeta {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub runs: Option<Vec<RawRun>>,
}

#[derive(Deserialize)]
pub struct RawRun {
    #[serde(default)]
    tool: Option<RawTool>,
    #[serde(default)]
    artifacts: Option<Vec<RawArtifact>>,
    #[serde(default, rename = "originalUriBaseIds")]
    bases: Option<HashMap<String, ArtifactLocation>>,
    #[serde(default)]
    invocations: Option<Vec<RawInvocation>>,
    #[serde(default, rename = "logicalLocations")]
    logical: Option<Vec<LogicalLocation>>,
}

#[derive(Deserialize)]
struct RawTool {
    #[serde(default)]
    driver: Option<RawComponent>,
    #[serde(default)]
    extensions: Option<Vec<RawComponent>>,
}

#[derive(Deserialize)]
struct RawComponent {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    rules: Option<Vec<RawRule>>,
    #[serde(default, rename = "globalMessageStrings")]
    global_messages: Option<HashMap<String, MessageString>>,
}

#[derive(Deserialize)]
struct RawRule {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "defaultConfiguration")]
    default_configuration: Option<Configuration>,
    #[serde(default, rename = "messageStrings")]
    messages: Option<HashMap<String, MessageString>>,
    #[serde(default)]
    properties: Option<Properties>,
    #[serde(default)]
    relationships: Option<Vec<Relationship>>,
}

/// A multiformatMessageString (§3.12).
#[derive(Deserialize, Clone)]
pub struct MessageString {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub markdown: Option<String>,
}

#[derive(Deserialize)]
pub struct Configuration {
    #[serde(default)]
    pub level: Option<String>,
}

/// A property bag (§3.8); only what the viewer uses.
#[derive(Deserialize, Default)]
pub struct Properties {
    #[serde(default)]
    pub tags: Option<Vec<serde_json::Value>>,
    #[serde(default, rename = "security-severity")]
    pub security_severity: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Relationship {
    #[serde(default)]
    target: Option<DescriptorRef>,
}

/// A reportingDescriptorReference (§3.52) with its toolComponentReference (§3.54).
#[derive(Deserialize, Default, Clone)]
pub struct DescriptorRef {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub index: Option<i64>,
    #[serde(default, rename = "toolComponent")]
    pub component: Option<ComponentRef>,
}

#[derive(Deserialize, Default, Clone)]
pub struct ComponentRef {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub index: Option<i64>,
}

#[derive(Deserialize)]
struct RawArtifact {
    #[serde(default)]
    location: Option<ArtifactLocation>,
}

#[derive(Deserialize)]
struct RawInvocation {
    #[serde(default, rename = "ruleConfigurationOverrides")]
    overrides: Option<Vec<RawOverride>>,
}

#[derive(Deserialize)]
struct RawOverride {
    #[serde(default)]
    descriptor: Option<DescriptorRef>,
    #[serde(default)]
    configuration: Option<Configuration>,
}

#[derive(Deserialize, Default, Clone)]
pub struct LogicalLocation {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "fullyQualifiedName")]
    pub fully_qualified_name: Option<String>,
    #[serde(default)]
    pub index: Option<i64>,
}

/// One rule as the viewer needs it.
#[derive(Default)]
pub struct Rule {
    pub id: String,
    pub level: Option<String>,
    pub messages: HashMap<String, MessageString>,
    pub security_severity: Option<Severity>,
    pub cwe: Vec<String>,
}

/// A tool component (driver or extension) with its rules.
#[derive(Default)]
pub struct Component {
    pub name: String,
    pub rules: Vec<Rule>,
    by_id: HashMap<String, usize>,
    pub global_messages: HashMap<String, MessageString>,
}

/// Everything a run says that its results refer to.
pub struct RunMeta {
    pub tool: String,
    pub driver: Component,
    pub extensions: Vec<Component>,
    pub artifacts: Vec<ArtifactLocation>,
    pub bases: HashMap<String, ArtifactLocation>,
    /// (component: None = driver, rule id, level) from `ruleConfigurationOverrides`.
    overrides: Vec<(Option<usize>, String, String)>,
    pub logical: Vec<LogicalLocation>,
}

fn message_map(m: Option<HashMap<String, MessageString>>) -> HashMap<String, MessageString> {
    m.unwrap_or_default()
}

/// `security-severity` (CodeQL, GitHub code scanning): a CVSS-like score as a string or
/// number, mapped the way GitHub maps it.
pub fn security_severity(p: &Properties) -> Option<Severity> {
    let score = match p.security_severity.as_ref()? {
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        serde_json::Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    Some(match score {
        s if s >= 9.0 => Severity::Critical,
        s if s >= 7.0 => Severity::High,
        s if s >= 4.0 => Severity::Medium,
        s if s > 0.0 => Severity::Low,
        _ => Severity::Info,
    })
}

/// CWE numbers from `tags` such as `external/cwe/cwe-89` (CodeQL) or `CWE-79`.
pub fn cwe_from_tags(p: &Properties, out: &mut Vec<String>) {
    for tag in p.tags.iter().flatten().filter_map(|t| t.as_str()) {
        let lower = tag.to_ascii_lowercase();
        let tail = lower.strip_prefix("external/cwe/").unwrap_or(&lower);
        if let Some(n) = tail.strip_prefix("cwe-").or_else(|| tail.strip_prefix("cwe:")) {
            if !n.is_empty() && n.len() <= 6 && n.bytes().all(|b| b.is_ascii_digit()) {
                push_unique(out, n.trim_start_matches('0').to_owned());
            }
        }
    }
}

/// A CWE taxon reference (`relationships[].target`, `result.taxa[]`): id "89" or "CWE-89"
/// in a component named CWE.
pub fn cwe_from_ref(r: &DescriptorRef, out: &mut Vec<String>) {
    let named_cwe = r.component.as_ref().and_then(|c| c.name.as_deref()).is_some_and(|n| n.eq_ignore_ascii_case("CWE"));
    let Some(id) = r.id.as_deref() else { return };
    let n = id.strip_prefix("CWE-").or_else(|| id.strip_prefix("cwe-")).unwrap_or(id);
    if (named_cwe || n.len() < id.len()) && !n.is_empty() && n.len() <= 6 && n.bytes().all(|b| b.is_ascii_digit()) {
        push_unique(out, n.trim_start_matches('0').to_owned());
    }
}

fn push_unique(out: &mut Vec<String>, v: String) {
    if !v.is_empty() && !out.contains(&v) {
        out.push(v);
    }
}

impl Component {
    fn from_raw(c: RawComponent) -> Component {
        let rules: Vec<Rule> = c
            .rules
            .into_iter()
            .flatten()
            .map(|r| {
                let props = r.properties.unwrap_or_default();
                let mut cwe = Vec::new();
                cwe_from_tags(&props, &mut cwe);
                for rel in r.relationships.iter().flatten().filter_map(|x| x.target.as_ref()) {
                    cwe_from_ref(rel, &mut cwe);
                }
                Rule {
                    id: r.id.unwrap_or_default(),
                    level: r.default_configuration.and_then(|c| c.level),
                    messages: message_map(r.messages),
                    security_severity: security_severity(&props),
                    cwe,
                }
            })
            .collect();
        let mut by_id = HashMap::new();
        for (i, r) in rules.iter().enumerate() {
            // The first rule with an id wins, as lookups by index are the exact form.
            by_id.entry(r.id.clone()).or_insert(i);
        }
        Component { name: c.name.unwrap_or_default(), rules, by_id, global_messages: message_map(c.global_messages) }
    }

    /// The rule with this id; for a hierarchical id `A/B/C` (§3.27.5) the nearest
    /// ancestor the component defines (`A/B`, then `A`).
    pub fn find(&self, id: &str) -> Option<&Rule> {
        let mut id = id;
        loop {
            if let Some(i) = self.by_id.get(id) {
                return self.rules.get(*i);
            }
            id = &id[..id.rfind('/')?];
        }
    }
}

impl RunMeta {
    /// Checks that the run is SARIF (`tool.driver` with a name) and indexes it.
    pub fn from_raw(run: RawRun, n: usize) -> Result<RunMeta, String> {
        let tool = run.tool.ok_or_else(|| format!("runs[{n}] has no \"tool\""))?;
        let driver = tool.driver.ok_or_else(|| format!("runs[{n}].tool has no \"driver\""))?;
        if driver.name.as_deref().is_none_or(str::is_empty) {
            return Err(format!("runs[{n}].tool.driver has no \"name\""));
        }
        let driver = Component::from_raw(driver);
        let extensions: Vec<Component> = tool.extensions.into_iter().flatten().map(Component::from_raw).collect();
        let mut meta = RunMeta {
            tool: driver.name.clone(),
            driver,
            extensions,
            artifacts: run.artifacts.into_iter().flatten().map(|a| a.location.unwrap_or_default()).collect(),
            bases: run.bases.unwrap_or_default(),
            overrides: Vec::new(),
            logical: run.logical.unwrap_or_default(),
        };
        for o in run.invocations.into_iter().flatten().flat_map(|i| i.overrides.into_iter().flatten()) {
            let (Some(d), Some(level)) = (o.descriptor, o.configuration.and_then(|c| c.level)) else { continue };
            let comp = meta.component_of(d.component.as_ref());
            let id = d.id.or_else(|| {
                let c = comp.map_or(&meta.driver, |i| &meta.extensions[i]);
                Some(c.rules.get(usize::try_from(d.index?).ok()?)?.id.clone())
            });
            if let Some(id) = id {
                meta.overrides.push((comp, id, level));
            }
        }
        Ok(meta)
    }

    /// Which component a reference names: None for the driver, Some(i) for extension i.
    pub fn component_of(&self, r: Option<&ComponentRef>) -> Option<usize> {
        let r = r?;
        if let Some(i) = r.index.and_then(|i| usize::try_from(i).ok()).filter(|i| *i < self.extensions.len()) {
            return Some(i);
        }
        let name = r.name.as_deref()?;
        self.extensions.iter().position(|e| e.name == name)
    }

    pub fn component(&self, c: Option<usize>) -> &Component {
        c.map_or(&self.driver, |i| &self.extensions[i])
    }

    /// The level an invocation's `ruleConfigurationOverrides` gives this rule.
    pub fn override_level(&self, comp: Option<usize>, rule_id: &str) -> Option<&str> {
        self.overrides.iter().find(|(c, id, _)| *c == comp && id == rule_id).map(|(_, _, l)| l.as_str())
    }
}
