//! The parser against hand-written calls (what real clients send, and what must be refused),
//! and the writer against dxr's own reader.

use std::collections::BTreeMap;

use dxr::Value;

use super::*;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn one(value_xml: &str) -> Result<Value, WireError> {
    let call =
        format!("<methodCall><methodName>m</methodName><params><param>{value_xml}</param></params></methodCall>");
    parse_call(&call).map(|c| c.params.into_iter().next().unwrap())
}

#[test]
fn python_style_call() {
    // What xmlrpc.client sends: declaration, newlines between elements.
    let text = "<?xml version='1.0'?>\n<methodCall>\n<methodName>agentMonitor.launchViewer</methodName>\n\
        <params>\n<param>\n<value><struct>\n<member>\n<name>project</name>\n<value><string>p1</string></value>\n\
        </member>\n<member>\n<name>n</name>\n<value><int>7</int></value>\n</member>\n</struct></value>\n\
        </param>\n</params>\n</methodCall>\n";
    let call = parse_call(text).unwrap();
    assert_eq!(call.name, "agentMonitor.launchViewer");
    let expect: BTreeMap<String, Value> =
        [("project".to_string(), s("p1")), ("n".to_string(), Value::Integer(7))].into();
    assert_eq!(call.params, vec![Value::Struct(expect)]);
}

#[test]
fn value_types_decode_as_dxr_does() {
    assert_eq!(one("<value> a </value>").unwrap(), s(" a "));
    assert_eq!(one("<value>  </value>").unwrap(), s(""));
    assert_eq!(one("<value/>").unwrap(), s(""));
    assert_eq!(one("<value>\n <string> x </string>\n</value>").unwrap(), s(" x "));
    assert_eq!(one("<value><string/></value>").unwrap(), s(""));
    assert_eq!(one("<value><string>a&amp;b&#65;&#x42;&lt;&gt;&apos;&quot;</string></value>").unwrap(), s("a&bAB<>'\""));
    assert_eq!(one("<value><string>a\r\nb\rc&#13;</string></value>").unwrap(), s("a\nb\nc\r"));
    assert_eq!(one("<value><string>a<![CDATA[<&>]]><!-- c -->b</string></value>").unwrap(), s("a<&>b"));
    assert_eq!(one("<value><int> +5 </int></value>").unwrap(), Value::Integer(5));
    assert_eq!(one("<value><i4>-5</i4></value>").unwrap(), Value::Integer(-5));
    assert_eq!(one("<value><boolean>1</boolean></value>").unwrap(), Value::Boolean(true));
    assert_eq!(one("<value><double>1.5e3</double></value>").unwrap(), Value::Double(1500.0));
    assert_eq!(one("<value><base64>aGVs\nbG8=</base64></value>").unwrap(), Value::Base64(b"hello".to_vec()));
    assert_eq!(one("<value><array><data/></array></value>").unwrap(), Value::Array(vec![]));
    assert_eq!(one("<value><array></array></value>").unwrap(), Value::Array(vec![]));
    assert_eq!(one("<value><struct/></value>").unwrap(), Value::Struct(BTreeMap::new()));
    let dup = "<value><struct><member><name>a</name><value>1</value></member>\
               <member><name>a</name><value>2</value></member></struct></value>";
    assert_eq!(one(dup).unwrap(), Value::Struct([("a".to_string(), s("2"))].into()));
    let dt = one("<value><dateTime.iso8601>20240101T01:02:03</dateTime.iso8601></value>").unwrap();
    assert_eq!(dt, Value::DateTime("20240101T01:02:03".parse().unwrap()));
}

#[test]
fn no_params_forms() {
    for text in [
        "<methodCall><methodName>x</methodName></methodCall>",
        "<methodCall><methodName>x</methodName><params/></methodCall>",
        "<methodCall><methodName>x</methodName><params> </params></methodCall>",
    ] {
        assert_eq!(parse_call(text).unwrap(), Call { name: "x".into(), params: vec![] }, "{text}");
    }
}

#[test]
fn refusals() {
    let bad = [
        ("", "expected <methodCall>"),
        ("<!DOCTYPE x [<!ENTITY e 'boom'>]><methodCall><methodName>x</methodName></methodCall>", "DOCTYPE"),
        ("<methodCall><methodName>x</methodName></methodCall><x/>", "nothing after"),
        ("<methodCall><methodName></methodName></methodCall>", "empty <methodName>"),
        ("<methodCall a='1'><methodName>x</methodName></methodCall>", "attributes"),
        ("<methodCall><methodName>x</methodName><params><param></param></params></methodCall>", "expected <value>"),
        ("<methodCall><methodName>x</methodName><params><param><value>1</value><value>2</value></param></params></methodCall>", "expected </param>"),
        ("<methodCall><methodName>x", "expected text and </methodName>"),
        ("<methodCall><methodName>x</methodName><params><param><value><string>x</value>", "</string>"),
    ];
    for (text, why) in bad {
        let e = parse_call(text).unwrap_err();
        assert!(e.0.contains(why), "{text}: {e}");
    }
    for (value, why) in [
        ("<value><i8>5</i8></value>", "unknown value type"),
        ("<value><nil/></value>", "empty <nil/>"),
        ("<value><boolean>true</boolean></value>", "not 0 or 1"),
        ("<value><int>99999999999</int></value>", "32-bit"),
        ("<value><int></int></value>", "32-bit"),
        ("<value><string>&foo;</string></value>", "entity"),
        ("<value><string>&#0;</string></value>", "entity"),
        ("<value><string>&#xD800;</string></value>", "entity"),
        ("<value><string>&#-5;</string></value>", "entity"),
        ("<value><string>&amp</string></value>", "unterminated entity"),
        ("<value> a <string>x</string></value>", "text beside"),
        ("<value><string>x</string><string>y</string></value>", "</value>"),
        ("<value><struct><member><name>a</name></member></struct></value>", "expected <value>"),
        ("<value><struct><member><name/><value>1</value></member></struct></value>", "expected <name>"),
        ("<value><base64>aGk</base64></value>", "base64"),
        ("<value><string>a<!-- x</string></value>", "unterminated comment"),
    ] {
        let e = one(value).unwrap_err();
        assert!(e.0.contains(why), "{value}: {e}");
    }
}

#[test]
fn nesting_is_bounded_while_parsing() {
    let deep = |n: usize| format!("{}{}", "<value><array><data>".repeat(n), "</data></array></value>".repeat(n));
    assert!(one(&deep(crate::value::MAX_NESTING)).is_ok());
    let e = one(&deep(crate::value::MAX_NESTING + 1)).unwrap_err();
    assert!(e.0.contains("nest deeper"), "{e}");
    // Far deeper than any stack could recurse: refused at the bound, no overflow.
    assert!(one(&deep(100_000)).is_err());
}

#[test]
fn answers_read_back_through_dxr() {
    let value = Value::Struct(
        [
            ("a&<b>".to_string(), s("x < y & z > w\r\n 'q' \"d\" ]]>")),
            (
                "n".to_string(),
                Value::Array(vec![Value::Integer(-3), Value::Boolean(false), Value::Double(0.25), s("")]),
            ),
            ("b".to_string(), Value::Base64(vec![0, 1, 2, 255])),
            ("t".to_string(), Value::DateTime("20261123T05:06:07".parse().unwrap())),
            ("e".to_string(), Value::Struct(BTreeMap::new())),
        ]
        .into(),
    );
    let text = write_response(&value);
    assert_eq!(dxr::MethodResponse::from_xml(&text).unwrap().value, value);
    let fault = dxr::FaultResponse::from_xml(&write_fault(7, "no <such> & thing")).unwrap().fault;
    assert_eq!((fault.code(), fault.string()), (7, "no <such> & thing"));
}

#[test]
fn declarations() {
    for ok in [
        "<?xml version='1.0'?>",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
        "<?xml version='1.0' encoding='utf-8' standalone='yes' ?>",
    ] {
        assert!(parse_call(&format!("{ok}<methodCall><methodName>x</methodName></methodCall>")).is_ok(), "{ok}");
    }
    for bad in [
        "<?xml version='1.\0'?>",
        "<?xml?>",
        "<?xml encoding='x' version='1.0'?>",
        " <?xml version='1.0'?>",
        "<?php x ?>",
    ] {
        assert!(parse_call(&format!("{bad}<methodCall><methodName>x</methodName></methodCall>")).is_err(), "{bad}");
    }
}

/// Corners where XML readers differ: each one either refused here, or read exactly as dxr
/// reads it. (The `xmlrpc_call` fuzz target checks the same over generated inputs.)
#[test]
fn agrees_with_dxr_on_corners() {
    let values = [
        "<value><string>  </string></value>",
        "<value><string> &#32; </string></value>",
        "<value>&#32;</value>",
        "<value><string><![CDATA[  ]]></string></value>",
        "<value><![CDATA[  ]]></value>",
        "<value><string>a<!--x--> </string></value>",
        "<value><string>\n</string></value>",
        "<value>\r\n</value>",
        "<value><int>\t5\n</int></value>",
        "<value><int>\u{a0}5</int></value>",
        "<value><double> inf </double></value>",
        "<value><string>&#1;\u{1}</string></value>",
        "<value><base64>a G k=</base64></value>",
        "<value><base64/></value>",
        "<value><dateTime.iso8601> 20240101T01:02:03 </dateTime.iso8601></value>",
        "<value><boolean> 1 </boolean></value>",
        "<value><struct><member><name> a </name><value>1</value></member></struct></value>",
        "<value><struct><member><name>a<!--x-->b</name><value>1</value></member></struct></value>",
        "<value><struct><member><value>1</value><name>a</name></member></struct></value>",
        "<value><array><data><value>1</value></data><data><value>2</value></data></array></value>",
        "<value><string>a]]>b</string></value>",
        "<value><int><![CDATA[5]]></int></value>",
    ];
    for v in values {
        let call = format!("<methodCall><methodName>m</methodName><params><param>{v}</param></params></methodCall>");
        if let Ok(ours) = parse_call(&call) {
            let theirs = dxr::MethodCall::from_xml(&call).unwrap_or_else(|e| panic!("{v}: dxr refuses: {e}"));
            assert_eq!(theirs.params, ours.params, "{v}");
        }
    }
}

#[test]
fn values_are_counted_while_parsing() {
    // Issue 13: a 63 MiB array of `<value/>` took 320 MiB once parsed. The parser stops at
    // MAX_VALUES, wherever the values are (array items, members or params).
    let items = |n: usize| format!("<value><array><data>{}</data></array></value>", "<value/>".repeat(n));
    // The array's own value counts too.
    assert!(one(&items(crate::value::MAX_VALUES - 1)).is_ok());
    let e = one(&items(crate::value::MAX_VALUES)).unwrap_err();
    assert!(e.0.contains("more than 10000 values"), "{e}");
    let members: String =
        (0..=crate::value::MAX_VALUES).map(|i| format!("<member><name>m{i}</name><value/></member>")).collect();
    assert!(one(&format!("<value><struct>{members}</struct></value>")).is_err());
}

#[test]
fn escaping_with_and_without_special_characters() {
    // Strings with nothing to escape take the one-pass path; each special alone the other.
    for text in ["", "plain 127.0.0.1:40000", "&", "<", ">", "\r", "a\rb", "x&&y<<z", "ünï<code>"] {
        let fault = dxr::FaultResponse::from_xml(&write_fault(1, text)).unwrap().fault;
        assert_eq!(fault.string(), text);
        let value = Value::Array(vec![s(text)]);
        assert_eq!(dxr::MethodResponse::from_xml(&write_response(&value)).unwrap().value, value, "{text:?}");
    }
}
