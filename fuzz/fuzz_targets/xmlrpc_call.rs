//! Bytes of a `POST /RPC2` body through the same edge pipeline agent-monitor applies
//! (`agent_monitor::rpc` endpoint): UTF-8 check, nesting bound, `MethodCall::from_xml`, then
//! every method's `from_params`. None may panic, and whatever `from_params` accepts must
//! satisfy the protocol's rules. Depends on the protocol crate only, so the sanitizer build
//! stays small.
#![no_main]

use vrun_proto::value::{nesting_depth, MAX_NESTING};
use dxr::{MethodCall, Value};
use libfuzzer_sys::fuzz_target;
use vrun_proto::methods::*;
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

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if nesting_depth(text) > MAX_NESTING {
        return;
    }
    let Ok(call) = MethodCall::from_xml(text) else { return };
    decode_all(&call.params);
});
