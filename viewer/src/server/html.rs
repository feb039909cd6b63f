//! Small HTML helpers: escaping, URL query encoding and the page frame.
//!
//! Pages are built with `format!`; every value that did not come from this crate's own
//! literals goes through [`esc`] (text and attribute values alike, since it escapes both
//! quote kinds) or [`qs`] (query-string values inside hrefs, then [`esc`] again).

use std::fmt::Write;

/// Escapes text for HTML element content and quoted attribute values. Bidirectional
/// controls (U+202A–202E, U+2066–2069, U+200E/F, U+061C) are shown as `[U+202E]`: left in,
/// they make a path display as another file's name.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}' => {
                let _ = write!(out, "[U+{:04X}]", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `s`, with "…" when cut (lists; the detail page shows all).
pub fn short(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => s.into(),
        Some((at, _)) => format!("{}…", &s[..at]).into(),
    }
}

/// Unix seconds as `<time>`: UTC in the text, turned into the reader's local time by
/// `local-time.js` (see headers.rs); without scripts the UTC text stands.
pub fn time_html(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, se) = (secs / 3600, secs % 3600 / 60, secs % 60);
    format!(
        "<time datetime=\"{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{se:02}Z\">{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{se:02} UTC</time>"
    )
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

/// The page style; its hash is in the Content-Security-Policy (headers.rs), so it is the
/// only style the page may use. Colours meet WCAG AA contrast on white (4.5:1 or more).
pub const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;width:100%;table-layout:auto}th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}\
caption{text-align:left;font-weight:600;padding:.3em 0}th a{color:inherit}\
td,th,pre,code,.loc{overflow-wrap:anywhere;word-break:break-word}td.msg{max-width:40em}td.loc{max-width:30em}\
.sev{font-weight:600;text-transform:uppercase;font-size:.8em}.critical{color:#900}.high{color:#b02a00}.medium{color:#7a4a00}.low{color:#2d5070}.info{color:#555}\
.gone{color:#595959}form.filters{margin:1em 0}form.filters *{margin-right:.4em}.box{border:1px solid #ddd;padding:1em;margin:1em 0}\
pre{white-space:pre-wrap}nav{margin-bottom:1em}.who{float:right}.skip{position:absolute;left:-9999px}.skip:focus{left:1em;top:1em;background:#fff;padding:.3em}\
.facets{display:flex;flex-wrap:wrap;gap:1.5em;margin:.5em 0}.facets ul{list-style:none;padding:0;margin:.2em 0}\
.active{background:#eef;padding:.4em;margin:.5em 0}.src{font-family:monospace;white-space:pre-wrap;overflow-wrap:anywhere}\
.src .hit{background:#ffec99}ol.flow li{margin:.4em 0}";

/// A complete page. `title` and `user` are escaped here; `body` must already be safe.
/// `ctx` is the context path of the pages (for the script that shows times in local
/// time); error pages, which show no times, pass None.
pub fn page(title: &str, user: Option<&str>, ctx: Option<&str>, body: &str) -> String {
    let who = user.map(|u| format!("<span class=\"who\">{}</span>", esc(u))).unwrap_or_default();
    let script = ctx.map(|c| format!("<script src=\"{}/local-time.js\" defer></script>", esc(c))).unwrap_or_default();
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style>{script}</head>\
         <body><a class=\"skip\" href=\"#main\">Skip to content</a><header>{who}<h1>{t}</h1></header>\
         <main id=\"main\">{body}</main></body></html>",
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
        assert_eq!(esc("evil\u{202E}txt.exe"), "evil[U+202E]txt.exe");
        assert_eq!(short("ab", 2), "ab");
        assert_eq!(short("日本語", 2), "日本…");
        assert!(time_html(1_700_000_000).contains(">2023-11-14 22:13:20 UTC<"));
        assert!(time_html(0).contains("1970-01-01T00:00:00Z"));
    }
}
