//! Exactly-once launches under concurrency, and locks surviving `kill -9`.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{job_spec, pair, runtime, Env};
use vrun_proto::client::Credentials;
use vrun_proto::methods::LaunchViewer;

const PAIRS: usize = 200;
const CALLS: usize = 5000;
const CLIENTS: usize = 64;

fn pair_of(i: usize) -> vrun_proto::Pair {
    pair(&format!("proj{}", i % PAIRS), "CodeDX")
}

type Acks = Arc<Mutex<HashMap<String, HashSet<i64>>>>;

/// 64 clients send `calls` launchViewer calls spread over the pairs; every acknowledged
/// generation is recorded per pair. Errors (a killed daemon) end a client quietly.
async fn storm(url: String, creds: Credentials, calls: usize, acks: Acks, launched: Arc<Mutex<usize>>) {
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (url, creds, acks, launched) = (url.clone(), creds.clone(), acks.clone(), launched.clone());
        tasks.push(tokio::spawn(async move {
            let client = vrun_proto::client::AgentMonitorClient::new(&url, creds).unwrap();
            let mut i = c;
            while i < calls {
                let p = pair_of(i);
                let reply = match client.launch_viewer(&LaunchViewer::new(p.clone())).await {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("client {c} stops: {e}");
                        return;
                    }
                };
                acks.lock().unwrap().entry(p.to_string()).or_default().insert(reply.generation);
                if reply.launched {
                    *launched.lock().unwrap() += 1;
                }
                i += CLIENTS;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn launched_pairs(env: &Env) -> Vec<String> {
    env.launches().iter().map(|(_, f)| job_spec(f).pair().unwrap().to_string()).collect()
}

#[test]
fn storm_launches_each_pair_exactly_once() {
    let env = Env::new();
    let d = env.start(&[]);
    let acks: Acks = Default::default();
    let launched = Arc::new(Mutex::new(0));
    runtime().block_on(storm(d.url.clone(), d.creds("launcher"), CALLS, acks.clone(), launched.clone()));

    let acks = acks.lock().unwrap();
    assert_eq!(acks.len(), PAIRS, "every pair got answers");
    for (p, gens) in acks.iter() {
        assert_eq!(gens.len(), 1, "pair {p} was answered with several generations: {gens:?}");
    }
    assert_eq!(*launched.lock().unwrap(), PAIRS, "launched=true exactly once per pair");
    let jobs = env.wait_launches(PAIRS, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500)); // a late duplicate would show up here
    let names = launched_pairs(&env);
    let distinct: HashSet<_> = names.iter().collect();
    assert_eq!(jobs.len(), PAIRS, "exactly {PAIRS} jobs started");
    assert_eq!(distinct.len(), PAIRS, "no pair has two jobs");
    // Every job carries the generation its pair's callers were told.
    for (_, file) in env.launches() {
        let spec = job_spec(&file);
        let told = &acks[&spec.pair().unwrap().to_string()];
        assert!(told.contains(&spec.generation), "job generation {} not the acknowledged one", spec.generation);
    }
}

#[test]
fn kill_9_mid_storm_loses_no_acknowledged_lock_and_launches_nothing_twice() {
    let env = Env::new();
    let d = env.start(&[]);
    let acks: Acks = Default::default();
    let launched = Arc::new(Mutex::new(0));
    let rt = runtime();
    let url = d.url.clone();
    let storm_task = rt.spawn(storm(url, d.creds("launcher"), CALLS, acks.clone(), launched.clone()));
    // Let part of the storm through, then kill the daemon without warning.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acks.lock().unwrap().values().map(|s| s.len()).sum::<usize>() < PAIRS / 2 {
        assert!(std::time::Instant::now() < deadline, "storm made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    d.kill9();
    rt.block_on(storm_task).unwrap();
    let before: HashMap<String, i64> =
        acks.lock().unwrap().iter().map(|(p, g)| (p.clone(), *g.iter().next().unwrap())).collect();
    assert!(!before.is_empty());

    let d2 = env.start(&[]);
    let client = d2.client();
    rt.block_on(async {
        for (p, gen) in &before {
            let (proj, viewer) = p.split_once('.').unwrap();
            let rec = client.viewer_status(&pair(proj, viewer)).await.unwrap();
            assert_eq!(rec.generation, *gen, "{p}: acknowledged generation changed across kill -9");
            assert_eq!(rec.state, "launching", "{p}: acknowledged lock lost: {rec:?}");
        }
    });
    // The rest of the pairs now, through the restarted daemon.
    let acks2: Acks = Default::default();
    rt.block_on(storm(d2.url.clone(), d2.creds("launcher"), CALLS, acks2.clone(), Arc::new(Mutex::new(0))));
    for (p, gens) in acks2.lock().unwrap().iter() {
        assert_eq!(gens.len(), 1, "{p}: several generations after restart");
        if let Some(g) = before.get(p) {
            assert!(gens.contains(g), "{p}: generation changed after restart");
        }
    }
    env.wait_launches(PAIRS, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    let names = launched_pairs(&env);
    let distinct: HashSet<_> = names.iter().collect();
    assert_eq!(
        names.len(),
        distinct.len(),
        "a pair was launched twice: {} jobs for {} pairs",
        names.len(),
        distinct.len()
    );
    assert_eq!(distinct.len(), PAIRS);
}
