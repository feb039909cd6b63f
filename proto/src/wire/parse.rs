//! `methodCall` text → method name and parameter [`Value`]s, by recursive descent over the
//! tokens of [`super::lex`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine;
use dxr::{DateTime, Value};

use super::lex::{clip, decode_text, find_byte, is_ws_byte, is_xml_ws, push_cdata, push_decoded, Lexer, Tok};
use super::WireError;
use crate::value::{MAX_NESTING, MAX_VALUES};

/// A parsed `methodCall`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: String,
    pub params: Vec<Value>,
}

/// Parses a whole `methodCall` document.
pub fn parse_call(text: &str) -> Result<Call, WireError> {
    let mut p = Parser { lex: Lexer::new(text), depth: 0, values: 0 };
    p.expect_start("methodCall")?;
    p.expect_start("methodName")?;
    let name = p.text_until_end("methodName")?;
    // Whitespace alone counts as empty (as in dxr).
    if all_ws(&name) {
        return Err(WireError("empty <methodName>".into()));
    }
    let mut params = Vec::new();
    match p.next_tag()? {
        Tok::Start("params") => loop {
            match p.next_tag()? {
                Tok::Start("param") => {
                    params.push(p.param_value()?);
                    p.expect_end("param")?;
                }
                Tok::End("params") => break,
                t => return Err(unexpected(t, "<param> or </params>")),
            }
        },
        Tok::Empty("params") => {}
        Tok::End("methodCall") => return p.finish(name, params),
        t => return Err(unexpected(t, "<params> or </methodCall>")),
    }
    p.expect_end("methodCall")?;
    p.finish(name, params)
}

struct Parser<'a> {
    lex: Lexer<'a>,
    /// Arrays and structs currently open.
    depth: usize,
    /// `<value>`s read so far: counted while parsing, because a body of nothing but
    /// `<value/>` costs about 40 bytes of parsed value per 8 bytes of text (issue 13).
    values: usize,
}

fn unexpected(t: Tok<'_>, wanted: &str) -> WireError {
    let found = match t {
        Tok::Start(n) => format!("<{}>", clip(n)),
        Tok::End(n) => format!("</{}>", clip(n)),
        Tok::Empty(n) => format!("<{}/>", clip(n)),
        Tok::Text(_) | Tok::CData(_) => "text".into(),
        Tok::Eof => "the end of the body".into(),
    };
    WireError(format!("expected {wanted}, found {found}"))
}

fn all_ws(s: &str) -> bool {
    find_byte(s, |b| !is_ws_byte(b)).is_none()
}

fn trim_ws(s: &str) -> &str {
    s.trim_matches(is_xml_ws)
}

impl<'a> Parser<'a> {
    /// The next tag, skipping whitespace between tags; any other text is an error.
    fn next_tag(&mut self) -> Result<Tok<'a>, WireError> {
        loop {
            match self.lex.next()? {
                Tok::Text(t) if all_ws(t) => continue,
                t @ (Tok::Text(_) | Tok::CData(_)) => return Err(unexpected(t, "a tag")),
                t => return Ok(t),
            }
        }
    }

    fn expect_start(&mut self, name: &str) -> Result<(), WireError> {
        match self.next_tag()? {
            Tok::Start(n) if n == name => Ok(()),
            t => Err(unexpected(t, &format!("<{name}>"))),
        }
    }

    fn expect_end(&mut self, name: &str) -> Result<(), WireError> {
        match self.next_tag()? {
            Tok::End(n) if n == name => Ok(()),
            t => Err(unexpected(t, &format!("</{name}>"))),
        }
    }

    fn finish(mut self, name: Cow<'_, str>, params: Vec<Value>) -> Result<Call, WireError> {
        match self.next_tag()? {
            Tok::Eof => Ok(Call { name: name.into_owned(), params }),
            t => Err(unexpected(t, "nothing after </methodCall>")),
        }
    }

    /// Character data up to `</name>`, decoded; no element may come in between.
    fn text_until_end(&mut self, name: &str) -> Result<Cow<'a, str>, WireError> {
        let (text, end) = self.text_until_tag()?;
        match end {
            Tok::End(n) if n == name => Ok(text),
            t => Err(unexpected(t, &format!("text and </{name}>"))),
        }
    }

    /// Character data up to the next tag (returned with it). Borrowed from the request
    /// when it is one plain run of text, as nearly all of it is.
    fn text_until_tag(&mut self) -> Result<(Cow<'a, str>, Tok<'a>), WireError> {
        let mut text = Cow::Borrowed("");
        loop {
            match self.lex.next()? {
                Tok::Text(raw) if text.is_empty() => text = decode_text(raw)?,
                Tok::Text(raw) => push_decoded(raw, text.to_mut())?,
                Tok::CData(raw) => push_cdata(raw, text.to_mut()),
                t => return Ok((text, t)),
            }
        }
    }

    /// `<value>...</value>` where one is required (a param or a member).
    fn param_value(&mut self) -> Result<Value, WireError> {
        self.count_value()?;
        match self.next_tag()? {
            Tok::Start("value") => self.value(),
            Tok::Empty("value") => Ok(Value::String(String::new())),
            t => Err(unexpected(t, "<value>")),
        }
    }

    /// Refuses the call once it holds more than [`MAX_VALUES`] values.
    fn count_value(&mut self) -> Result<(), WireError> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(WireError(format!("more than {MAX_VALUES} values in one call")));
        }
        Ok(())
    }

    /// The inside of `<value>`, after its start tag, through its end tag.
    fn value(&mut self) -> Result<Value, WireError> {
        let (text, tag) = self.text_until_tag()?;
        let v = match tag {
            // No type element: a string. Whitespace alone is an empty one (as dxr reads it).
            Tok::End("value") => {
                return Ok(Value::String(if all_ws(&text) { String::new() } else { text.into_owned() }))
            }
            _ if !all_ws(&text) => return Err(WireError("text beside a type element in <value>".into())),
            Tok::Start(ty) => self.typed(ty)?,
            Tok::Empty(ty) => empty_typed(ty)?,
            t => return Err(unexpected(t, "a type element or </value>")),
        };
        self.expect_end("value")?;
        Ok(v)
    }

    fn typed(&mut self, ty: &str) -> Result<Value, WireError> {
        let bad = |what: &str, text: &str| WireError(format!("bad <{ty}> value {:?}: {what}", clip(text)));
        Ok(match ty {
            "struct" => Value::Struct(self.nested(Self::members)?),
            "array" => Value::Array(self.nested(Self::array)?),
            "string" => Value::String(self.text_until_end(ty)?.into_owned()),
            "int" | "i4" => {
                let t = self.text_until_end(ty)?;
                Value::Integer(trim_ws(&t).parse().map_err(|_| bad("not a 32-bit integer", &t))?)
            }
            "boolean" => match &*self.text_until_end(ty)? {
                "0" => Value::Boolean(false),
                "1" => Value::Boolean(true),
                t => return Err(bad("not 0 or 1", t)),
            },
            "double" => {
                let t = self.text_until_end(ty)?;
                Value::Double(trim_ws(&t).parse().map_err(|_| bad("not a number", &t))?)
            }
            "dateTime.iso8601" => {
                let t = self.text_until_end(ty)?;
                Value::DateTime(t.parse::<DateTime>().map_err(|_| bad("not YYYYMMDDTHH:MM:SS", &t))?)
            }
            "base64" => {
                let t = self.text_until_end(ty)?;
                // Python and Perl wrap base64 every 76 characters.
                let compact: Cow<'_, str> = if t.contains(is_xml_ws) {
                    t.chars().filter(|&c| !is_xml_ws(c)).collect::<String>().into()
                } else {
                    t
                };
                let bytes = base64::engine::general_purpose::STANDARD.decode(compact.as_bytes());
                Value::Base64(bytes.map_err(|e| WireError(format!("bad <base64> value: {e}")))?)
            }
            _ => return Err(WireError(format!("unknown value type <{}>", clip(ty)))),
        })
    }

    /// Runs `inner` one array/struct level deeper, refusing to go past [`MAX_NESTING`].
    fn nested<T>(&mut self, inner: impl FnOnce(&mut Self) -> Result<T, WireError>) -> Result<T, WireError> {
        if self.depth >= MAX_NESTING {
            return Err(WireError(format!("values nest deeper than {MAX_NESTING} levels")));
        }
        self.depth += 1;
        let r = inner(self);
        self.depth -= 1;
        r
    }

    fn members(&mut self) -> Result<BTreeMap<String, Value>, WireError> {
        let mut members = BTreeMap::new();
        loop {
            match self.next_tag()? {
                Tok::Start("member") => {
                    self.expect_start("name")?;
                    let name = self.text_until_end("name")?;
                    if all_ws(&name) {
                        return Err(WireError("empty member <name>".into()));
                    }
                    let value = self.param_value()?;
                    self.expect_end("member")?;
                    // A repeated name: the last one counts, as in dxr.
                    members.insert(name.into_owned(), value);
                }
                Tok::End("struct") => return Ok(members),
                t => return Err(unexpected(t, "<member> or </struct>")),
            }
        }
    }

    fn array(&mut self) -> Result<Vec<Value>, WireError> {
        let mut items = Vec::new();
        match self.next_tag()? {
            Tok::Start("data") => loop {
                match self.next_tag()? {
                    Tok::Start("value") => {
                        self.count_value()?;
                        items.push(self.value()?)
                    }
                    Tok::Empty("value") => {
                        self.count_value()?;
                        items.push(Value::String(String::new()))
                    }
                    Tok::End("data") => break,
                    t => return Err(unexpected(t, "<value> or </data>")),
                }
            },
            Tok::Empty("data") => {}
            Tok::End("array") => return Ok(items),
            t => return Err(unexpected(t, "<data> or </array>")),
        }
        self.expect_end("array")?;
        Ok(items)
    }
}

/// `<string/>`, `<struct/>`, `<array/>`: the empty value of the type; other types need text.
fn empty_typed(ty: &str) -> Result<Value, WireError> {
    match ty {
        "string" => Ok(Value::String(String::new())),
        "struct" => Ok(Value::Struct(BTreeMap::new())),
        "array" => Ok(Value::Array(Vec::new())),
        _ => Err(WireError(format!("empty <{}/> is not a value", clip(ty)))),
    }
}
