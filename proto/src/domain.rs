//! How a libvirt domain says it belongs to vrun: a `<metadata>` element naming its pair and
//! generation. vruntask writes it; agent-monitor's inventory reads it. Domains without it
//! belong to someone else and are never touched.

use crate::names::Pair;

/// Namespace of vrun's domain metadata element.
pub const METADATA_URI: &str = "http://vrun.invalid/xmlns/instance/1";
/// Prefix used for the element in domain XML.
pub const METADATA_PREFIX: &str = "vrun";

/// The element to put inside `<metadata>`. Names are validated, so no escaping is needed.
pub fn metadata_element(pair: &Pair, generation: i64) -> String {
    format!(
        "<{METADATA_PREFIX}:instance xmlns:{METADATA_PREFIX}=\"{METADATA_URI}\" project=\"{}\" viewer=\"{}\" generation=\"{generation}\"/>",
        pair.project(),
        pair.viewer()
    )
}

/// Reads the element back as libvirt returns it (prefix and namespace declaration vary).
/// Anything that does not parse to a valid pair and positive generation is `None`.
pub fn parse_metadata(xml: &str) -> Option<(Pair, i64)> {
    let attr = |name: &str| -> Option<&str> {
        let pat = format!(" {name}=\"");
        let start = xml.find(&pat)? + pat.len();
        let len = xml[start..].find('"')?;
        Some(&xml[start..start + len])
    };
    let pair = Pair::new(attr("project")?, attr("viewer")?).ok()?;
    let generation: i64 = attr("generation")?.parse().ok()?;
    (generation > 0).then_some((pair, generation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_junk() {
        let p = Pair::new("p1", "CodeDX").unwrap();
        assert_eq!(parse_metadata(&metadata_element(&p, 42)), Some((p, 42)));
        let libvirt_form = "<instance xmlns=\"http://vrun.invalid/xmlns/instance/1\" project=\"a\" viewer=\"b\" generation=\"7\"/>";
        assert_eq!(parse_metadata(libvirt_form).unwrap().1, 7);
        assert_eq!(parse_metadata("<instance project=\"../x\" viewer=\"b\" generation=\"7\"/>"), None);
        assert_eq!(parse_metadata("<instance project=\"a\" viewer=\"b\" generation=\"-1\"/>"), None);
    }
}
