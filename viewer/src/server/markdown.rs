//! SARIF `message.markdown` (§3.11.4) rendered for the finding page, safely: all text is
//! escaped first and only a few GitHub-flavoured basics become markup.

use std::fmt::Write;

use super::html::esc;

/// A SARIF `message.markdown` as HTML, safely: everything is escaped first, then only
/// GitHub-flavoured basics are turned into markup: paragraphs (blank lines), `- `/`* `
/// lists, `` `code` ``, `**strong**`, `*em*`, links to related locations (`loc:N`, from
/// the import) and to `http(s)` URLs (`rel="noopener noreferrer"`). Anything else (HTML,
/// images, other URL schemes) stays visible text.
pub fn markdown_html(md: &str) -> String {
    let mut out = String::new();
    let mut in_list = false;
    let mut para: Vec<&str> = Vec::new();
    let flush = |para: &mut Vec<&str>, out: &mut String| {
        if !para.is_empty() {
            let _ = write!(out, "<p>{}</p>", inline_markdown(&para.join("\n")));
            para.clear();
        }
    };
    for line in md.lines() {
        let t = line.trim_start();
        if let Some(item) = t.strip_prefix("- ").or_else(|| t.strip_prefix("* ")) {
            flush(&mut para, &mut out);
            if !in_list {
                out.push_str("<ul>");
                in_list = true;
            }
            let _ = write!(out, "<li>{}</li>", inline_markdown(item));
            continue;
        }
        if in_list {
            out.push_str("</ul>");
            in_list = false;
        }
        if t.is_empty() {
            flush(&mut para, &mut out);
        } else {
            para.push(line);
        }
    }
    flush(&mut para, &mut out);
    if in_list {
        out.push_str("</ul>");
    }
    out
}

/// Inline markdown of one block (see [`markdown_html`]).
fn inline_markdown(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(['`', '*', '[']) {
        out.push_str(&esc(&rest[..i]));
        let tail = &rest[i..];
        let pair = |open: &str, close: &str| -> Option<(String, usize)> {
            let inner = tail.strip_prefix(open)?;
            let end = inner.find(close).filter(|e| *e > 0)?;
            Some((inner[..end].to_owned(), open.len() + end + close.len()))
        };
        if let Some((code, n)) = pair("`", "`") {
            let _ = write!(out, "<code>{}</code>", esc(&code));
            rest = &tail[n..];
        } else if let Some((b, n)) = pair("**", "**") {
            let _ = write!(out, "<strong>{}</strong>", esc(&b));
            rest = &tail[n..];
        } else if let Some((e, n)) = pair("*", "*") {
            let _ = write!(out, "<em>{}</em>", esc(&e));
            rest = &tail[n..];
        } else if let Some((text, target, n)) = tail.strip_prefix('[').and_then(|inner| {
            let mid = inner.find("](")?;
            let end = inner[mid..].find(')')? + mid;
            Some((&inner[..mid], &inner[mid + 2..end], end + 2))
        }) {
            let href = if let Some(p) = target.strip_prefix("loc:").filter(|p| p.parse::<usize>().is_ok()) {
                Some(format!("#loc-{p}"))
            } else if target.starts_with("https://") || target.starts_with("http://") {
                Some(target.to_owned())
            } else {
                None
            };
            match href {
                Some(h) if h.starts_with('#') => {
                    let _ = write!(out, "<a href=\"{}\">{}</a>", esc(&h), esc(text));
                }
                Some(h) => {
                    let _ = write!(out, "<a href=\"{}\" rel=\"noopener noreferrer\">{}</a>", esc(&h), esc(text));
                }
                None => out.push_str(&esc(&tail[..n])),
            }
            rest = &tail[n..];
        } else {
            out.push_str(&esc(&tail[..1]));
            rest = &tail[1..];
        }
    }
    out.push_str(&esc(rest));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_basics_and_nothing_else() {
        assert_eq!(
            markdown_html("Use `x<y` and **bold** *em* [doc](https://d.example/a?b=1&c) [see](loc:2)\n\n- one\n- <b>two</b>"),
            "<p>Use <code>x&lt;y</code> and <strong>bold</strong> <em>em</em> \
             <a href=\"https://d.example/a?b=1&amp;c\" rel=\"noopener noreferrer\">doc</a> <a href=\"#loc-2\">see</a></p>\
             <ul><li>one</li><li>&lt;b&gt;two&lt;/b&gt;</li></ul>"
        );
        assert_eq!(
            markdown_html("[x](javascript:alert(1)) <img src=x onerror=alert(1)>"),
            "<p>[x](javascript:alert(1)) &lt;img src=x onerror=alert(1)&gt;</p>"
        );
    }
}
