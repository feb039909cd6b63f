//! Small HTML helpers: escaping, URL query encoding and the page frame.
//!
//! Pages are built with `format!`; every value that did not come from this crate's own
//! literals goes through [`esc`] (text and attribute values alike, since it escapes both
//! quote kinds) or [`qs`] (query-string values inside hrefs, then [`esc`] again).

use std::fmt::Write;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A finding's message as HTML: escaped, with the import's links to related locations
/// (`[text](loc:N)`, see import::sarif) made into links to `#loc-N` when `links`, or
/// reduced to their text (lists, where a link would lead nowhere).
pub fn message_html(message: &str, links: bool) -> String {
    let mut out = String::with_capacity(message.len() + 16);
    let mut rest = message;
    while let Some(start) = rest.find('[') {
        let tail = &rest[start..];
        let link = tail.find("](loc:").and_then(|mid| {
            let end = tail[mid..].find(')')? + mid;
            let n: usize = tail[mid + 6..end].parse().ok()?;
            (!tail[1..mid].contains('[')).then_some((&tail[1..mid], n, end))
        });
        out.push_str(&esc(&rest[..start]));
        match link {
            Some((text, n, end)) => {
                if links {
                    let _ = write!(out, "<a href=\"#loc-{n}\">{}</a>", esc(text));
                } else {
                    out.push_str(&esc(text));
                }
                rest = &tail[end + 1..];
            }
            None => {
                out.push('[');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(&esc(rest));
    out
}

/// Percent-encodes a query-string value (everything but unreserved characters).
pub fn qs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}\
th a{color:inherit}td.msg{max-width:40em;overflow-wrap:anywhere}\
.sev{font-weight:600;text-transform:uppercase;font-size:.8em}.critical{color:#900}.high{color:#c30}.medium{color:#a60}.low{color:#357}.info{color:#666}\
.gone{color:#999}form.filters{margin:1em 0}form.filters *{margin-right:.4em}.box{border:1px solid #ddd;padding:1em;margin:1em 0}\
pre{white-space:pre-wrap;overflow-wrap:anywhere}nav{margin-bottom:1em}";

/// A complete page. `title` and `user` are escaped here; `body` must already be safe.
pub fn page(title: &str, user: Option<&str>, body: &str) -> String {
    let who = user.map(|u| format!("<span style=\"float:right\">{}</span>", esc(u))).unwrap_or_default();
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body>{who}<h1>{t}</h1>{body}</body></html>",
        t = esc(title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(esc("<a href='x'>\"&\"</a>"), "&lt;a href=&#39;x&#39;&gt;&quot;&amp;&quot;&lt;/a&gt;");
        assert_eq!(qs("a b&c=ü"), "a%20b%26c%3D%C3%BC");
        assert_eq!(message_html("<x> [a](loc:2) [b](c) [", true), "&lt;x&gt; <a href=\"#loc-2\">a</a> [b](c) [");
        assert_eq!(message_html("[a&](loc:2)", false), "a&amp;");
    }
}
