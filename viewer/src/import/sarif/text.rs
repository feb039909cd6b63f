//! Text rules of SARIF 2.1.0 that do not depend on the log's structure: message
//! placeholders (§3.11.5), embedded links (§3.11.6) and artifact URIs (§3.4, §3.14.14).

use std::collections::HashMap;

/// Fills `{0}`, `{1}`… from `args` and turns `{{` / `}}` into single braces (§3.11.5).
/// A placeholder without an argument is left as written, so nothing silently vanishes.
pub fn format(template: &str, args: &[String]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('{') {
            if let Some(end) = tail.find('}') {
                if let Ok(n) = tail[1..end].parse::<usize>() {
                    match args.get(n) {
                        Some(a) => out.push_str(a),
                        None => out.push_str(&tail[..=end]),
                    }
                    rest = &tail[end + 1..];
                    continue;
                }
            }
        }
        out.push_str(&tail[..1]);
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

/// Rewrites embedded links `[text](N)` whose target is a related location's `id` (§3.11.6)
/// into `[text](loc:P)`, P being that location's 1-based position on the finding page.
/// Other links (URLs) and escaped brackets are left alone.
pub fn link_locations(message: &str, positions: &HashMap<i64, usize>) -> String {
    if positions.is_empty() || !message.contains("](") {
        return message.to_owned();
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find("](") {
        let (head, tail) = rest.split_at(i);
        let close = tail[2..].find(')').map(|e| e + 2);
        let target = close.and_then(|e| tail[2..e].trim().parse::<i64>().ok()).and_then(|id| positions.get(&id));
        match (target, close) {
            (Some(p), Some(e)) => {
                out.push_str(head);
                out.push_str(&format!("](loc:{p})"));
                rest = &tail[e + 1..];
            }
            _ => {
                out.push_str(head);
                out.push_str("](");
                rest = &tail[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// An artifact location as the log gives it: a URI, maybe relative to a named base.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ArtifactLocation {
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default, rename = "uriBaseId")]
    pub uri_base_id: Option<String>,
    #[serde(default)]
    pub index: Option<i64>,
}

/// True for an absolute URI (with a scheme) or an absolute path.
fn is_absolute(uri: &str) -> bool {
    uri.starts_with('/')
        || uri.split_once(':').is_some_and(|(scheme, _)| {
            scheme.len() > 1 && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        })
}

/// Resolves `uri` against the chain of `uriBaseId`s in `originalUriBaseIds` (§3.14.14).
/// A base the log does not define leaves the URI relative: that is the path users know
/// (relative to their source root). Chains are followed at most 8 deep (cycles end there).
pub fn resolve(uri: &str, base_id: Option<&str>, bases: &HashMap<String, ArtifactLocation>) -> String {
    let mut full = uri.to_owned();
    let mut next = base_id.map(str::to_owned);
    for _ in 0..8 {
        if is_absolute(&full) {
            break;
        }
        let Some(base) = next.take().and_then(|id| bases.get(&id)) else { break };
        let mut prefix = base.uri.clone().unwrap_or_default();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        full = prefix + &full;
        next = base.uri_base_id.clone();
    }
    full
}

/// Turns an artifact URI into the path users know: `file:///C:/x` → `C:/x`,
/// `file:///home/x` → `/home/x`, `file://src/x` → `src/x`; `%XX` decoded.
pub fn uri_to_path(uri: &str) -> String {
    let path = if let Some(rest) = uri.strip_prefix("file://") {
        if rest.starts_with('/') {
            rest.to_owned()
        } else {
            // `file://src/a.c` and `file://C:/x` are malformed but common: tools mean a
            // path, not a host, so the rest is read as one.
            rest.to_owned()
        }
    } else if let Some(rest) = uri.strip_prefix("file:") {
        rest.to_owned()
    } else {
        uri.to_owned()
    };
    let path = decode(&path);
    // `/C:/x` (from `file:///C:/x`) is a Windows drive path: drop the slash.
    match path.strip_prefix('/') {
        Some(rest) if looks_like_drive(rest) => rest.to_owned(),
        _ => path,
    }
}

fn looks_like_drive(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b.len() == 2 || b[2] == b'/' || b[2] == b'\\')
}

/// Percent-decoding; invalid UTF-8 after decoding keeps the encoded text.
fn decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
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
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_escaped_braces() {
        let args = vec!["x".to_string(), "f()".to_string()];
        assert_eq!(format("'{0}' is used in {1}; {{0}} stays", &args), "'x' is used in f(); {0} stays");
        assert_eq!(format("{2} {a} {", &args), "{2} {a} {");
    }

    #[test]
    fn links_to_related_locations() {
        let pos = HashMap::from([(1, 2usize)]);
        assert_eq!(
            link_locations("from [here](1) see [doc](https://x)", &pos),
            "from [here](loc:2) see [doc](https://x)"
        );
    }

    #[test]
    fn uris() {
        assert_eq!(uri_to_path("file:///C:/src/a%20b.c"), "C:/src/a b.c");
        assert_eq!(uri_to_path("file:///home/u/a.c"), "/home/u/a.c");
        assert_eq!(uri_to_path("file://src/a%20b.c"), "src/a b.c");
        assert_eq!(uri_to_path("src/ü.c"), "src/ü.c");
        let bases = HashMap::from([
            (
                "SRC".to_string(),
                ArtifactLocation { uri: Some("lib".into()), uri_base_id: Some("ROOT".into()), index: None },
            ),
            ("ROOT".to_string(), ArtifactLocation { uri: Some("file:///C:/work/".into()), ..Default::default() }),
        ]);
        assert_eq!(uri_to_path(&resolve("a.c", Some("SRC"), &bases)), "C:/work/lib/a.c");
        assert_eq!(resolve("a.c", Some("UNDEFINED"), &bases), "a.c");
        assert_eq!(resolve("/abs/a.c", Some("SRC"), &bases), "/abs/a.c");
    }
}
