//! Capacity limits against the real daemon (stand-in jobs): a View beyond a limit waits
//! with its place in line, is not refused and not launched twice, starts when room frees,
//! can be stopped while it waits, keeps its place across a `kill -9` of agent-monitor, and
//! per-type limits hold only their own type back.

mod common;

use std::time::Duration;

use common::{launch, pair, report_stopped, runtime, Env};
use vrun_proto::methods::SetViewerState;
use vrun_proto::{Pair, ViewerState};
use vrun_test_support::AgentMonitor;

fn waiting(d: &AgentMonitor, rt: &tokio::runtime::Runtime, p: &Pair) -> (i64, i64, String) {
    let c = d.client_as("launcher");
    let avail = rt.block_on(c.is_viewer_available(p)).unwrap();
    let rec = rt.block_on(c.viewer_status(p)).unwrap();
    assert_eq!(avail.waiting, rec.waiting, "isViewerAvailable and viewerStatus disagree on {p}");
    (rec.waiting, rec.generation, rec.reason)
}

#[test]
fn views_beyond_the_limit_wait_in_line_and_start_when_room_frees() {
    let env = Env::new();
    let rt = runtime();
    let d = env.start(&["--max-viewers", "2"]);
    let pairs: Vec<Pair> = (1..=4).map(|i| pair(&format!("p{i}"), "CodeDX")).collect();
    let gens: Vec<i64> = pairs
        .iter()
        .map(|p| launch(&d, &rt, p))
        .map(|(launched, g)| {
            assert!(launched, "a View beyond the limit must take the lock and wait, not be refused");
            g
        })
        .collect();
    assert_eq!(env.wait_launches(2, Duration::from_secs(20)).len(), 2);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(env.launches().len(), 2, "a job was started beyond the limit");
    let (place, _, reason) = waiting(&d, &rt, &pairs[2]);
    assert_eq!(place, 1, "{reason}");
    assert!(reason.contains("limit of 2 live viewers") && reason.contains("number 1 in line"), "{reason}");
    assert_eq!(waiting(&d, &rt, &pairs[3]).0, 2);
    assert_eq!(waiting(&d, &rt, &pairs[0]).0, 0);
    // A second click on a waiting pair is the same instance, still waiting.
    assert_eq!(launch(&d, &rt, &pairs[2]), (false, gens[2]));
    // The REST view shows it too.
    let rec = rt.block_on(d.client().list_viewers()).unwrap();
    assert_eq!(rec.iter().filter(|r| r.waiting > 0).count(), 2);

    // agent-monitor crashes and comes back: nobody waiting is started, places kept.
    d.kill9();
    let d = env.start(&["--max-viewers", "2"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(env.launches().len(), 2, "restart started a waiting launch");
    assert_eq!(waiting(&d, &rt, &pairs[2]).0, 1);

    // Room frees: the first in line starts, the second moves up.
    report_stopped(&d, &rt, &pairs[0], gens[0]);
    let l = env.wait_launches(3, Duration::from_secs(20));
    assert_eq!(l.len(), 3, "the first in line did not start when room freed");
    assert!(l[2].1.to_string_lossy().contains(&format!("g{}", gens[2])), "{:?} is not p3's job", l[2].1);
    assert_eq!(waiting(&d, &rt, &pairs[2]).0, 0);
    let (place, _, reason) = waiting(&d, &rt, &pairs[3]);
    assert_eq!(place, 1, "{reason}");

    // Stopping a waiting View ends it at once (no job ever ran to report it).
    rt.block_on(d.client().abort_viewer(&pairs[3])).unwrap();
    let rec = rt.block_on(d.client().viewer_status(&pairs[3])).unwrap();
    assert_eq!(
        (rec.state.as_str(), rec.reason.as_str(), rec.waiting),
        ("stopped", "stopped while waiting for room", 0)
    );
    report_stopped(&d, &rt, &pairs[1], gens[1]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(env.launches().len(), 3, "a stopped waiting View was started");
}

#[test]
fn a_per_type_limit_holds_back_only_its_own_type() {
    let env = Env::new();
    let rt = runtime();
    let conf = env.tmp.path().join("am.toml");
    std::fs::write(&conf, "[viewer.ThreadFix]\nmax_viewers = 1\n").unwrap();
    let d = env.start(&["--config", conf.to_str().unwrap()]);
    let t1 = pair("a", "ThreadFix");
    let t2 = pair("b", "ThreadFix");
    let c1 = pair("c", "CodeDX");
    let g1 = launch(&d, &rt, &t1).1;
    launch(&d, &rt, &t2);
    launch(&d, &rt, &c1);
    assert_eq!(env.wait_launches(2, Duration::from_secs(20)).len(), 2);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(env.launches().len(), 2);
    let (place, _, reason) = waiting(&d, &rt, &t2);
    assert!(place == 1 && reason.contains("limit of 1 live ThreadFix viewers"), "{place} {reason}");
    assert_eq!(waiting(&d, &rt, &c1).0, 0, "a CodeDX View waited behind the ThreadFix limit");
    report_stopped(&d, &rt, &t1, g1);
    assert_eq!(env.wait_launches(3, Duration::from_secs(20)).len(), 3);
    assert_eq!(waiting(&d, &rt, &t2).0, 0);
}

#[test]
fn the_start_limit_admits_the_next_view_when_one_is_ready() {
    let env = Env::new();
    let rt = runtime();
    let d = env.start(&["--max-starts", "1"]);
    let (a, b) = (pair("s1", "CodeDX"), pair("s2", "CodeDX"));
    let ga = launch(&d, &rt, &a).1;
    launch(&d, &rt, &b);
    assert_eq!(env.wait_launches(1, Duration::from_secs(20)).len(), 1);
    let (place, _, reason) = waiting(&d, &rt, &b);
    assert!(place == 1 && reason.contains("1 viewers starting at once"), "{reason}");
    let ready = SetViewerState {
        pair: a.clone(),
        generation: ga,
        state: ViewerState::Ready,
        ipaddress: Some("127.0.0.1:1".into()),
        domain: None,
        message: None,
    };
    rt.block_on(d.client().set_viewer_state(&ready)).unwrap();
    assert_eq!(env.wait_launches(2, Duration::from_secs(20)).len(), 2, "ready did not free a start");
}
