//! SIGHUP: the settings that can change while viewers run are read again.
//!
//! The config file is re-read under the same flags and environment, and the secret files
//! are read again ([`crate::auth::Secrets::reload`]). What changes live: capacity limits
//! (launches now within them start at once), idle and lifetime limits, the retention of
//! ended instances. Everything else (listen address, state directory, launcher, timings of
//! leases and sweeps) needs a restart, and the log says which of them changed.
//! A file that does not parse changes nothing.

use std::sync::Arc;

use crate::config::{Resolved, Settings};
use crate::daemon::Daemon;

/// Applies `source` resolved afresh; returns the names of changed settings that need a restart.
pub async fn apply(m: &Arc<Daemon>, old: &Resolved, source: &Settings) -> anyhow::Result<Vec<&'static str>> {
    let new = source.clone().resolve()?;
    m.job_ctx.capacity.set(new.capacity.clone());
    m.timing.limits.set(new.limits.clone());
    m.timing.retention.set(new.retention);
    let secrets = Arc::clone(&m.job_ctx.secrets);
    let grace = m.timing.job_key_grace;
    tokio::task::spawn_blocking(move || secrets.reload(grace)).await??;
    // Raised limits: whoever now fits starts.
    let ctx = m.job_ctx.clone();
    let effects = m.store.write(move |c| crate::instances::admit(c, &ctx, crate::store::now_ms())).await?;
    m.apply(effects);
    let mut restart = Vec::new();
    let mut differs = |name, changed: bool| {
        if changed {
            restart.push(name);
        }
    };
    differs("listen", new.listen != old.listen);
    differs("state_dir", new.state_dir != old.state_dir);
    differs(
        "launcher",
        new.slurm.is_some() != old.slurm.is_some()
            || new.record_jobs != old.record_jobs
            || new.fetch_jobs != old.fetch_jobs,
    );
    differs("platform", new.platform != old.platform);
    differs("lease_secs", new.lease != old.lease);
    differs("sweep_secs", new.sweep_every != old.sweep_every);
    differs("libvirt_uri", new.libvirt_uri != old.libvirt_uri);
    Ok(restart)
}

/// Waits for SIGHUP and applies each; ends at shutdown.
pub async fn run(m: Arc<Daemon>, cfg: Resolved, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; settings reload only with a restart");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {}
            _ = shutdown.changed() => return,
        }
        match apply(&m, &cfg, &cfg.source).await {
            Ok(restart) if restart.is_empty() => tracing::info!("SIGHUP: settings and secrets reloaded"),
            Ok(restart) => tracing::warn!(
                needs_restart = ?restart,
                "SIGHUP: settings and secrets reloaded; these changed and take effect only at a restart"
            ),
            Err(e) => tracing::error!(error = %e, "SIGHUP: reload failed; nothing changed"),
        }
    }
}
