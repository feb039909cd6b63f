//! Idle and lifetime shutdown (SWAMP's figures by default: idle 1 h, lifetime 8 h).
//!
//! Each ready viewer's last user activity is read from its own `GET {ctx}/api/activity`. A
//! viewer idle longer than its type's `idle_timeout`, or alive longer than `max_lifetime`,
//! is stopped through the normal path (`stopping`, the job saves the database), so no triage
//! work is lost. An unreachable viewer is not stopped for idleness: the lease and the sweep
//! deal with dead ones.

use std::sync::Arc;
use std::time::Duration;

use vrun_proto::ViewerState;

use crate::daemon::Daemon;
use crate::instances::{self, Instance};
use crate::store::now_ms;

pub async fn run(m: Arc<Daemon>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let http = match reqwest::Client::builder().timeout(Duration::from_secs(5)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client; idle shutdown disabled");
            return;
        }
    };
    let mut tick = tokio::time::interval(m.timing.sweep_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => check_all(&m, &http).await,
            _ = shutdown.changed() => return,
        }
    }
}

/// Unix seconds of the viewer's last user activity, if it answers.
async fn last_activity(http: &reqwest::Client, inst: &Instance) -> Option<i64> {
    let url = format!("http://{}/{}/api/activity", inst.address, inst.urluuid);
    let resp = http.get(url).header("API-Key", &inst.apikey).send().await.ok()?;
    let v: serde_json::Value = resp.error_for_status().ok()?.json().await.ok()?;
    v["last_activity"].as_i64()
}

async fn check_all(m: &Arc<Daemon>, http: &reqwest::Client) {
    // Page by page: holding every live row at once cost 10,000 whole rows each pass.
    let mut after = 0;
    loop {
        let page =
            m.store.read(move |c| instances::in_state_after(c, ViewerState::Ready, after, instances::PAGE)).await;
        let Ok(page) = page else { return };
        let Some(last) = page.last() else { return };
        after = last.generation;
        check_page(m, http, page).await;
    }
}

async fn check_page(m: &Arc<Daemon>, http: &reqwest::Client, page: Vec<Instance>) {
    let now_s = now_ms() / 1000;
    for inst in page.into_iter().filter(|i| !i.address.is_empty()) {
        let (idle, lifetime) = m.timing.limits.get().for_viewer(inst.pair.viewer());
        let age = now_s - inst.created_ms / 1000;
        let reason = if age > lifetime.as_secs() as i64 {
            Some(format!("alive for {age} s, longer than max_lifetime {} s", lifetime.as_secs()))
        } else {
            match last_activity(http, &inst).await {
                Some(last) if now_s - last > idle.as_secs() as i64 => {
                    Some(format!("idle for {} s, longer than idle_timeout {} s", now_s - last, idle.as_secs()))
                }
                _ => None,
            }
        };
        if let Some(reason) = reason {
            tracing::info!(pair = %inst.pair, generation = inst.generation, %reason, "stopping viewer");
            let generation = inst.generation;
            let _ = m
                .store
                .write(move |c| match instances::by_generation(c, generation)? {
                    Some(mut i) if i.state == ViewerState::Ready => {
                        instances::transition(c, &mut i, ViewerState::Stopping, &reason, now_ms())
                    }
                    _ => Ok(()),
                })
                .await;
        }
    }
}
