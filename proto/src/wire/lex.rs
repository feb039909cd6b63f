//! The XML tokens XML-RPC uses, borrowed from the request text: tags without attributes,
//! text, CDATA. Comments and a leading `<?xml version="1.0" ...?>` declaration are skipped;
//! other processing instructions and `<!DOCTYPE>` are refused (so no entity is ever defined
//! or expanded).

use std::borrow::Cow;

use super::WireError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tok<'a> {
    Start(&'a str),
    End(&'a str),
    Empty(&'a str),
    /// Raw character data: may hold entity references and carriage returns.
    Text(&'a str),
    CData(&'a str),
    Eof,
}

pub(super) struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

pub(super) fn is_xml_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// The first byte matching `f`. Every delimiter here is ASCII, and no byte of a multi-byte
/// UTF-8 character is, so the index is a character boundary; scanning bytes instead of
/// decoding characters is what keeps this parser cheap.
pub(super) fn find_byte(s: &str, f: impl Fn(u8) -> bool) -> Option<usize> {
    s.bytes().position(f)
}

pub(super) fn is_ws_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl<'a> Lexer<'a> {
    pub(super) fn new(s: &'a str) -> Lexer<'a> {
        Lexer { s, pos: 0 }
    }

    fn err(&self, what: &str) -> WireError {
        WireError(format!("{what} at byte {}", self.pos))
    }

    /// The text from the cursor up to `end`, moving the cursor past `end`.
    fn until(&mut self, end: &str, what: &str) -> Result<&'a str, WireError> {
        let rest = &self.s[self.pos..];
        match rest.find(end) {
            Some(i) => {
                self.pos += i + end.len();
                Ok(&rest[..i])
            }
            None => Err(self.err(&format!("unterminated {what}"))),
        }
    }

    pub(super) fn next(&mut self) -> Result<Tok<'a>, WireError> {
        loop {
            let rest = &self.s[self.pos..];
            if rest.is_empty() {
                return Ok(Tok::Eof);
            }
            if !rest.starts_with('<') {
                let len = rest.find('<').unwrap_or(rest.len());
                self.pos += len;
                return Ok(Tok::Text(&rest[..len]));
            }
            if rest.starts_with("<!--") {
                self.pos += 4;
                self.until("-->", "comment")?;
            } else if rest.starts_with("<?") {
                let at_start = self.pos == 0;
                self.pos += 2;
                let pi = self.until("?>", "processing instruction")?;
                if !(at_start && is_declaration(pi)) {
                    return Err(self
                        .err("processing instructions other than a leading <?xml version=\"1.0\"?> are not accepted"));
                }
            } else if rest.starts_with("<![CDATA[") {
                self.pos += 9;
                return Ok(Tok::CData(self.until("]]>", "CDATA section")?));
            } else if rest.starts_with("<!") {
                return Err(self.err("DOCTYPE and other declarations are not accepted"));
            } else if let Some(after) = rest.strip_prefix("</") {
                let name_len = find_byte(after, |b| is_ws_byte(b) || b == b'>').unwrap_or(after.len());
                let name = &after[..name_len];
                self.pos += 2 + name_len;
                self.skip_ws();
                if name.is_empty() || !self.s[self.pos..].starts_with('>') {
                    return Err(self.err("malformed end tag"));
                }
                self.pos += 1;
                return Ok(Tok::End(name));
            } else {
                let after = &rest[1..];
                let name_len = find_byte(after, |b| is_ws_byte(b) || b == b'>' || b == b'/').unwrap_or(after.len());
                let name = &after[..name_len];
                self.pos += 1 + name_len;
                self.skip_ws();
                let tail = &self.s[self.pos..];
                if name.is_empty() {
                    return Err(self.err("malformed tag"));
                } else if tail.starts_with("/>") {
                    self.pos += 2;
                    return Ok(Tok::Empty(name));
                } else if tail.starts_with('>') {
                    self.pos += 1;
                    return Ok(Tok::Start(name));
                }
                return Err(self.err(&format!("attributes are not accepted (in <{}>)", clip(name))));
            }
        }
    }

    fn skip_ws(&mut self) {
        let rest = &self.s[self.pos..];
        self.pos += find_byte(rest, |b| !is_ws_byte(b)).unwrap_or(rest.len());
    }
}

/// The inside of `<?xml ...?>` as clients write it: `version="1.0"`, then optionally an
/// encoding and `standalone`, single or double quotes.
fn is_declaration(pi: &str) -> bool {
    let Some(mut rest) = pi.strip_prefix("xml") else { return false };
    let mut seen_version = false;
    loop {
        let trimmed = rest.trim_start_matches(is_xml_ws);
        if trimmed.is_empty() {
            return seen_version;
        }
        if trimmed.len() == rest.len() {
            return false; // attributes must be separated by whitespace
        }
        let Some((key, after)) = trimmed.split_once('=') else { return false };
        let after = after.trim_start_matches(is_xml_ws);
        let Some(quote) = after.chars().next().filter(|&c| c == '"' || c == '\'') else { return false };
        let Some((value, tail)) = after[1..].split_once(quote) else { return false };
        let ok = match key.trim_end_matches(is_xml_ws) {
            "version" if !seen_version => value == "1.0",
            "encoding" if seen_version => {
                value.starts_with(|c: char| c.is_ascii_alphabetic())
                    && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            }
            "standalone" if seen_version => value == "yes" || value == "no",
            _ => false,
        };
        if !ok {
            return false;
        }
        seen_version = true;
        rest = tail;
    }
}

/// A name from the request, shortened for an error message.
pub(super) fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Character data as the application sees it: entity and character references resolved,
/// line ends normalised to `\n` (XML 1.0 §2.11). Borrows when there is nothing to do.
pub(super) fn decode_text(raw: &str) -> Result<Cow<'_, str>, WireError> {
    if find_byte(raw, |b| b == b'&' || b == b'\r').is_none() {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    push_decoded(raw, &mut out)?;
    Ok(Cow::Owned(out))
}

pub(super) fn push_decoded(raw: &str, out: &mut String) -> Result<(), WireError> {
    let mut rest = raw;
    while let Some(i) = find_byte(rest, |b| b == b'&' || b == b'\r') {
        out.push_str(&rest[..i]);
        if rest.as_bytes()[i] == b'\r' {
            out.push('\n');
            rest = rest[i + 1..].strip_prefix('\n').unwrap_or(&rest[i + 1..]);
            continue;
        }
        let after = &rest[i + 1..];
        let end = after.find(';').ok_or_else(|| WireError("unterminated entity reference".into()))?;
        out.push(entity(&after[..end])?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(())
}

/// CDATA is taken literally except for line ends.
pub(super) fn push_cdata(raw: &str, out: &mut String) {
    let mut rest = raw;
    while let Some(i) = rest.find('\r') {
        out.push_str(&rest[..i]);
        out.push('\n');
        rest = rest[i + 1..].strip_prefix('\n').unwrap_or(&rest[i + 1..]);
    }
    out.push_str(rest);
}

fn entity(name: &str) -> Result<char, WireError> {
    let code = match name {
        "amp" => return Ok('&'),
        "lt" => return Ok('<'),
        "gt" => return Ok('>'),
        "apos" => return Ok('\''),
        "quot" => return Ok('"'),
        _ => match name.strip_prefix("#x") {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => name.strip_prefix('#').and_then(|d| d.parse::<u32>().ok()),
        },
    };
    let bad = || WireError(format!("unknown or invalid entity reference &{};", clip(name)));
    // Digits only: `from_str_radix` and `parse` would also take a sign.
    let digits = name.trim_start_matches("#x").trim_start_matches('#');
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return Err(bad());
    }
    code.filter(|&c| c != 0).and_then(char::from_u32).ok_or_else(bad)
}
