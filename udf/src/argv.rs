//! The stored procedure's options, checked and turned into an argument vector.
//!
//! Only SWAMP's option names pass: launchviewer's own (`--agent-monitor`, `--secret-file`,
//! `--db-config`, …) come from the administrator's configuration, so no SQL caller can send
//! the launcher's secret to another address. Each pair becomes one `--name=value`
//! argument: a value that looks like an option (`--agent-monitor=…`) stays a value.

/// SWAMP's `launch_viewer` options (both releases); launchviewer accepts every one.
pub const ALLOWED: &[&str] = &[
    "viewer_name",
    "project",
    "viewer_uuid",
    "package",
    "tool_name",
    "source_archive_path",
    "package_type",
    "file_path",
    "user_uuid",
    "invocation_cmd",
    "viewer_checksum",
    "viewer_db_path",
    "viewer_db_checksum",
];

/// Most options a View can carry (SWAMP's views are of a handful of results files).
const MAX_ARGS: usize = 256;
/// Most bytes of one value (a path, a UUID, a name).
const MAX_VALUE: usize = 4096;

/// `["viewer_name","CodeDX","file_path","/a.xml",…]` → `["--viewer_name=CodeDX", …]`.
/// JSON `null` values are left out, as SWAMP's procedure left out NULL options.
pub fn from_json(json: &[u8]) -> Result<Vec<String>, String> {
    let items: Vec<Option<String>> =
        serde_json::from_slice(json).map_err(|e| format!("the argument is not a JSON array of strings: {e}"))?;
    if !items.len().is_multiple_of(2) {
        return Err("the JSON array must hold name/value pairs (an even number of items)".into());
    }
    if items.len() > 2 * MAX_ARGS {
        return Err(format!("more than {MAX_ARGS} options"));
    }
    let mut argv = Vec::new();
    for pair in items.chunks(2) {
        let name = pair[0].as_deref().ok_or("an option name is null")?;
        if !ALLOWED.contains(&name) {
            return Err(format!("option {name:?} is not one of launch_viewer's ({})", ALLOWED.join(", ")));
        }
        let Some(value) = pair[1].as_deref() else { continue };
        if value.len() > MAX_VALUE || value.contains('\0') {
            return Err(format!("the value of {name} is longer than {MAX_VALUE} bytes or holds a NUL byte"));
        }
        argv.push(format!("--{name}={value}"));
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_become_single_arguments() {
        let argv = from_json(
            br#"["viewer_name","CodeDX","package","a'b; $(rm -rf /)","file_path","/r 1.xml","user_uuid",null]"#,
        )
        .unwrap();
        assert_eq!(argv, ["--viewer_name=CodeDX", "--package=a'b; $(rm -rf /)", "--file_path=/r 1.xml"]);
        // A value that looks like an option is still the value of its own option.
        assert_eq!(
            from_json(br#"["package","--agent-monitor=http://x"]"#).unwrap(),
            ["--package=--agent-monitor=http://x"]
        );
    }

    #[test]
    fn launchviewers_own_options_and_odd_arrays_are_refused() {
        for bad in [
            &br#"["agent-monitor","http://evil/RPC2"]"#[..],
            br#"["secret_file","/etc/shadow"]"#,
            br#"["project"]"#,
            br#"[null,"x"]"#,
            br#"{"project":"p"}"#,
            b"not json",
        ] {
            assert!(from_json(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
