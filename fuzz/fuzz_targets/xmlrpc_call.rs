//! Bytes of a `POST /RPC2` body through the same edge pipeline agent-monitor applies
//! (`agent_monitor::rpc` endpoint): UTF-8 check, `wire::parse_call`, then every method's
//! `from_params`. None may panic, and whatever `from_params` accepts must satisfy the
//! protocol's rules. The hand-written parser is also checked against dxr's: every call it
//! accepts, dxr accepts with the same name and values, and every value it decoded, written
//! back with `wire::write_response`, reads back through dxr unchanged. Depends on the
//! protocol crate only, so the sanitizer build stays small.
#![no_main]

use dxr::{MethodCall, MethodResponse, Value};
use libfuzzer_sys::fuzz_target;
use vrun_proto::methods::*;
use vrun_proto::wire::{parse_call, write_response};
use vrun_proto::{validate_name, Pair};

fn check_pair(p: &Pair) {
    validate_name("project", p.project()).expect("accepted pair has a valid project");
    validate_name("viewer", p.viewer()).expect("accepted pair has a valid viewer");
}

/// A request that was accepted must survive the client's encoding unchanged (what vruntask
/// and launchviewer send is what agent-monitor reads). Integers travel as XML-RPC `<int>`, so
/// only generations that fit in 32 bits round-trip.
macro_rules! round_trip {
    ($t:ty, $r:expr) => {
        assert_eq!(<$t>::from_params(&$r.to_params()).as_ref(), Ok(&$r), "{} round trip", stringify!($t))
    };
}

fn fits(generation: i64) -> bool {
    i32::try_from(generation).is_ok()
}

fn decode_all(params: &[Value]) {
    if let Ok(r) = LaunchViewer::from_params(params) {
        check_pair(&r.pair);
        if let Some(u) = &r.user {
            validate_name("user", u).expect("accepted user is valid");
        }
        assert!(r.viewer_uuid.as_ref().is_none_or(|s| s.len() <= 128));
        for s in [&r.resultsfolder, &r.db_path].into_iter().flatten() {
            assert!(s.len() <= 4096 && !s.contains('\0'));
        }
        round_trip!(LaunchViewer, r);
    }
    if let Ok(r) = IsViewerAvailable::from_params(params) {
        check_pair(&r.pair);
        round_trip!(IsViewerAvailable, r);
    }
    if let Ok(r) = SetViewerState::from_params(params) {
        check_pair(&r.pair);
        assert!(r.generation > 0);
        assert!(r.message.as_ref().is_none_or(|m| m.len() <= 4096 && !m.contains('\0')));
        assert!(r.ipaddress.as_ref().is_none_or(|m| m.len() <= 256));
        assert!(r.domain.as_ref().is_none_or(|m| m.len() <= 256));
        if fits(r.generation) {
            round_trip!(SetViewerState, r);
        }
    }
    if let Ok(r) = GenerationRef::from_params(params) {
        check_pair(&r.pair);
        assert!(r.generation > 0);
        if fits(r.generation) {
            round_trip!(GenerationRef, r);
        }
    }
    if let Ok(r) = PairRef::from_params(params) {
        check_pair(&r.pair);
        round_trip!(PairRef, r);
    }
    if let Ok(r) = StoreViewer::from_params(params) {
        check_pair(&r.pair);
        assert!(r.generation > 0);
        assert!(r.checksum.len() == 64 && r.checksum.bytes().all(|b| b.is_ascii_hexdigit()));
        if fits(r.generation) {
            round_trip!(StoreViewer, r);
        }
    }
    if let Ok(r) = ClaimPush::from_params(params) {
        check_pair(&r.pair);
        assert!(r.generation > 0);
        if fits(r.generation) {
            round_trip!(ClaimPush, r);
        }
    }
    if let Ok(r) = PushDone::from_params(params) {
        check_pair(&r.pair);
        assert!(r.generation > 0);
        if fits(r.generation) {
            round_trip!(PushDone, r);
        }
    }
}

/// Equality where a NaN equals a NaN (a `<double>NaN</double>` is the same on both sides).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Struct(x), Value::Struct(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((kx, vx), (ky, vy))| kx == ky && same(vx, vy))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(call) = parse_call(text) else { return };
    let theirs = MethodCall::from_xml(text).expect("dxr accepts every call wire accepts");
    assert_eq!(theirs.name, call.name, "method name as dxr reads it");
    assert_eq!(theirs.params.len(), call.params.len());
    for (t, ours) in theirs.params.iter().zip(&call.params) {
        assert!(same(t, ours), "values as dxr reads them: dxr {t:?}, wire {ours:?}");
        let back = MethodResponse::from_xml(&write_response(ours)).expect("dxr reads wire's answers").value;
        assert!(same(&back, ours), "answer read back: {back:?} vs {ours:?}");
    }
    decode_all(&call.params);
});
