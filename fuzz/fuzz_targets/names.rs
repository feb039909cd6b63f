//! Property check of the name validator: whatever `validate_name` accepts is 1–64 bytes of
//! `[A-Za-z0-9_-]` starting with a letter or digit, and the ids derived from an accepted pair
//! are safe as file, domain and job names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vrun_proto::names::MAX_NAME_LEN;
use vrun_proto::{validate_name, Pair};

fn valid(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

fn safe_id(id: &str) {
    assert!(!id.contains('/') && !id.contains("..") && !id.contains('\0'), "{id:?}");
    assert!(!id.chars().any(char::is_whitespace), "{id:?}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    // One input gives a project and a viewer: split at the first NUL (or use it twice).
    let (project, viewer) = s.split_once('\0').unwrap_or((s, s));
    for n in [project, viewer] {
        assert_eq!(validate_name("project", n).is_ok(), valid(n), "{n:?}");
    }
    if let Ok(pair) = Pair::new(project, viewer) {
        assert!(valid(project) && valid(viewer));
        safe_id(&pair.execrunid());
        safe_id(&pair.domain_name("0123456789ab", i64::MAX));
        safe_id(&pair.domain_name("fedcba987654", 1));
        safe_id(&pair.to_string());
    }
});
