//! [`Value`] → `methodResponse` text, appended to one `String`.

use std::fmt::Write as _;

use base64::Engine;
use dxr::Value;

use crate::value::{clamp_i32, StructSink};

const HEAD: &str = "<?xml version=\"1.0\"?><methodResponse>";

/// A successful answer carrying `value`.
pub fn write_response(value: &Value) -> String {
    let mut out = String::with_capacity(384);
    out.push_str(HEAD);
    out.push_str("<params><param>");
    write_value(&mut out, value);
    out.push_str("</param></params></methodResponse>");
    out
}

/// A fault answer: `faultCode` and `faultString`, as every XML-RPC client expects them.
pub fn write_fault(code: i32, message: &str) -> String {
    let mut out = String::with_capacity(256 + message.len());
    out.push_str(HEAD);
    let _ = write!(
        out,
        "<fault><value><struct><member><name>faultCode</name><value><i4>{code}</i4></value></member>\
         <member><name>faultString</name><value><string>"
    );
    escape(&mut out, message);
    out.push_str("</string></value></member></struct></value></fault></methodResponse>");
    out
}

/// A successful answer carrying one struct, written member by member without building a
/// [`Value`] first: for the answers every View asks for many times (`launchViewer`,
/// `isViewerAvailable`). Reads back exactly as the same members through a `StructBuilder`.
pub struct StructAnswer(String);

impl StructAnswer {
    pub fn new() -> StructAnswer {
        // A ready `isViewerAvailable` answer is about 650 bytes: room for it at once.
        let mut out = String::with_capacity(768);
        out.push_str(HEAD);
        out.push_str("<params><param><value><struct>");
        StructAnswer(out)
    }

    fn member(&mut self, key: &str) {
        self.0.push_str("<member><name>");
        escape(&mut self.0, key);
        self.0.push_str("</name><value>");
    }

    pub fn finish(mut self) -> String {
        self.0.push_str("</struct></value></param></params></methodResponse>");
        self.0
    }
}

impl Default for StructAnswer {
    fn default() -> Self {
        StructAnswer::new()
    }
}

impl StructSink for StructAnswer {
    fn str(mut self, key: &str, v: &str) -> Self {
        self.member(key);
        self.0.push_str("<string>");
        escape(&mut self.0, v);
        self.0.push_str("</string></value></member>");
        self
    }

    fn int(mut self, key: &str, v: i64) -> Self {
        self.member(key);
        let _ = write!(self.0, "<i4>{}</i4></value></member>", clamp_i32(v));
        self
    }

    fn bool(mut self, key: &str, v: bool) -> Self {
        self.member(key);
        let _ = write!(self.0, "<boolean>{}</boolean></value></member>", u8::from(v));
        self
    }
}

fn write_value(out: &mut String, v: &Value) {
    out.push_str("<value>");
    match v {
        Value::String(s) => {
            out.push_str("<string>");
            escape(out, s);
            out.push_str("</string>");
        }
        Value::Integer(i) => {
            let _ = write!(out, "<i4>{i}</i4>");
        }
        Value::Boolean(b) => {
            let _ = write!(out, "<boolean>{}</boolean>", u8::from(*b));
        }
        Value::Double(d) => {
            let _ = write!(out, "<double>{d}</double>");
        }
        Value::DateTime(t) => {
            let _ = write!(out, "<dateTime.iso8601>{t}</dateTime.iso8601>");
        }
        Value::Base64(b) => {
            out.push_str("<base64>");
            base64::engine::general_purpose::STANDARD.encode_string(b, out);
            out.push_str("</base64>");
        }
        Value::Struct(members) => {
            out.push_str("<struct>");
            for (name, value) in members {
                out.push_str("<member><name>");
                escape(out, name);
                out.push_str("</name>");
                write_value(out, value);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
        }
        Value::Array(items) => {
            out.push_str("<array><data>");
            for item in items {
                write_value(out, item);
            }
            out.push_str("</data></array>");
        }
        // Types this build of dxr does not enable (`i8`, `nil`) would come here if another
        // crate turned them on: let dxr write those few itself.
        #[allow(unreachable_patterns)]
        other => {
            let xml = other.to_xml().unwrap_or_default();
            out.push_str(xml.strip_prefix("<value>").and_then(|x| x.strip_suffix("</value>")).unwrap_or(&xml));
        }
    }
    out.push_str("</value>");
}

/// Character data for text content: `&` and `<` must be escaped, `>` is for `]]>`, and a
/// carriage return as a reference survives the reader's line-end normalisation.
fn escape(out: &mut String, s: &str) {
    // Almost every string has nothing to escape: one pass without an early exit (which the
    // compiler vectorises) decides that, instead of a byte-by-byte search (perf: `escape` was
    // the largest user-space symbol of a status call).
    if !s.bytes().fold(false, |any, b| any | matches!(b, b'&' | b'<' | b'>' | b'\r')) {
        out.push_str(s);
        return;
    }
    let mut rest = s;
    // Bytes, not chars: all four are ASCII (see `lex::find_byte`).
    while let Some(i) = rest.bytes().position(|b| matches!(b, b'&' | b'<' | b'>' | b'\r')) {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            _ => "&#13;",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}
