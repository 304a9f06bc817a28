//! credtrail-collector: tails the ECS agent's credential audit log (`/var/log/ecs/audit.log` and
//! its rotated files) into its own DuckDB store exactly once, records the agent's task inventory,
//! and publishes immutable Parquet segments for the analyzer.
//!
//! The library is the program; `main.rs` only parses flags and maps errors to exit codes.

pub mod agent;
pub mod config;
pub mod coverage;
pub mod fault;
pub mod ingest;
pub mod parse;
pub mod segment;
pub mod ship;
pub mod source;
pub mod store;
pub mod sys;
pub mod tail;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::Result;
use tracing::{info, warn};

pub use config::Config;
pub use ingest::{AlreadyRunning, Collector, RunSummary};

/// What wakes the follow loop.
#[derive(Debug)]
pub enum Wake {
    /// Something changed in the audit directory (a hint: the rescan is the truth).
    Fs,
    /// An inventory snapshot: observed-at (µs since the epoch) and its rows.
    Inventory(i64, Vec<agent::InventoryRow>),
    /// The agent's `/v1/metadata` (its container instance ARN and cluster), when it changed.
    Metadata(agent::AgentMetadata),
    /// Stop: commit what was read, publish, exit.
    Shutdown,
}

/// A request to stop, seen between two batches: a signal handler sets it, so a long backlog
/// read stops at the next commit instead of at its end.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Ingests everything present once, publishes segments if configured, and returns.
pub fn run_once(config: &Config) -> Result<RunSummary> {
    sys::tune_allocator();
    sys::share_heap();
    let config = &Config {
        once: true, // coverage rows say `once`, also for library callers
        ..config.clone()
    };
    let mut collector = Collector::open(config, Some(Duration::from_secs(30)))?;
    // Opening DuckDB touched most of its code once; a backlog needs a fraction of it again.
    sys::release_program_pages();
    if let Some(url) = &config.agent_url {
        let client = agent::AgentClient::new(url, Duration::from_secs(5));
        match client.metadata() {
            Ok(meta) => collector.set_agent_metadata(&meta),
            Err(e) => {
                warn!(error = %format!("{e:#}"), "agent metadata unreachable: coverage is recorded without a container instance ARN");
            }
        }
        match client.tasks() {
            Ok(rows) => collector.add_inventory(store::now_us(), rows),
            Err(e) => warn!(error = %format!("{e:#}"), "agent inventory not recorded"),
        }
    }
    collector.drain(false)?;
    collector.publish()?;
    Ok(collector.finish())
}

/// Follows the directory until a [`Wake::Shutdown`] arrives on `wake`, then commits, publishes
/// and returns. `sender` is handed to the file watcher and the inventory poller.
pub fn follow(config: &Config, sender: Sender<Wake>, wake: Receiver<Wake>) -> Result<RunSummary> {
    follow_until(config, sender, wake, Stop::default())
}

/// [`follow`], also stopping when `stop` is requested: then reading stops after the batch being
/// read, which is committed (a backlog can take minutes; a service manager waits seconds).
pub fn follow_until(
    config: &Config,
    sender: Sender<Wake>,
    wake: Receiver<Wake>,
    stop: Stop,
) -> Result<RunSummary> {
    sys::tune_allocator();
    let mut collector = Collector::open(config, None)?;
    collector.set_stop(stop.clone());
    info!(dir = %config.audit_dir.display(), store = %config.store.display(), host = collector.host(), "following");
    let _watcher = if config.notify {
        watch(config, sender.clone())
    } else {
        None
    };
    if let Some(url) = config.agent_url.clone() {
        spawn_agent_poller(
            url,
            Duration::from_secs(config.agent_poll_secs.max(1)),
            sender,
        );
    }
    let mut fs_event = true;
    let mut started = true;
    loop {
        collector.poll(fs_event, false)?;
        fs_event = false;
        if started {
            // Start-up code (opening DuckDB, the schema, a backlog) is not needed again.
            started = false;
            sys::release_program_pages();
        }
        if collector.publish_due()
            && let Err(e) = collector.publish()
        {
            warn!(error = %format!("{e:#}"), "publishing segments failed; retrying later");
        }
        collector.maintain_if_due();
        let mut shutdown = false;
        let deadline = Instant::now() + config.tick();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match wake.recv_timeout(left) {
                Ok(Wake::Fs) => fs_event = true,
                Ok(Wake::Inventory(at, rows)) => collector.add_inventory(at, rows),
                Ok(Wake::Metadata(meta)) => collector.set_agent_metadata(&meta),
                Ok(Wake::Shutdown) => shutdown = true,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => shutdown = true,
            }
            if shutdown || fs_event {
                break;
            }
        }
        if shutdown || stop.requested() {
            break;
        }
    }
    info!("stopping: committing what was read");
    if stop.requested() {
        collector.commit_read()?;
    } else {
        collector.drain(false)?;
    }
    if let Err(e) = collector.publish() {
        warn!(error = %format!("{e:#}"), "publishing segments at shutdown failed; they are published on the next start");
    }
    Ok(collector.finish())
}

fn watch(config: &Config, sender: Sender<Wake>) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let handler = move |event: notify::Result<notify::Event>| {
        if lost_events(&event) {
            warn!(
                "file-system notifications were lost (the kernel's queue overflowed); rescanning the audit directory"
            );
        }
        if wakes(&event) {
            let _ = sender.send(Wake::Fs);
        }
    };
    match notify::recommended_watcher(handler) {
        Ok(mut w) => match w.watch(&config.audit_dir, RecursiveMode::NonRecursive) {
            Ok(()) => Some(w),
            Err(e) => {
                warn!(error = %e, "cannot watch the audit directory; polling only");
                None
            }
        },
        Err(e) => {
            warn!(error = %e, "no file-system notifications; polling only");
            None
        }
    }
}

/// Only changes wake the loop: our own reads and directory listings raise access events, which
/// would otherwise wake it again at once, forever. Errors (a queue overflow) wake it to rescan.
fn wakes(event: &notify::Result<notify::Event>) -> bool {
    match event {
        Ok(e) => !matches!(e.kind, notify::EventKind::Access(_)),
        Err(_) => true,
    }
}

/// inotify's IN_Q_OVERFLOW (notify's `Rescan` flag) or an error of the watcher: some events
/// never arrived, so only a rescan knows what changed.
fn lost_events(event: &notify::Result<notify::Event>) -> bool {
    match event {
        Ok(e) => e.need_rescan(),
        Err(_) => true,
    }
}

fn spawn_agent_poller(url: String, every: Duration, sender: Sender<Wake>) {
    std::thread::Builder::new()
        .name("agent-poller".into())
        .spawn(move || {
            let client = agent::AgentClient::new(&url, Duration::from_secs(5));
            let mut failing = false;
            let mut metadata: Option<agent::AgentMetadata> = None;
            loop {
                // Asked at every poll: an agent that re-registers names another instance.
                if let Ok(meta) = client.metadata()
                    && metadata.as_ref() != Some(&meta)
                {
                    metadata = Some(meta.clone());
                    if sender.send(Wake::Metadata(meta)).is_err() {
                        return;
                    }
                }
                match client.tasks() {
                    Ok(rows) => {
                        if failing {
                            info!(%url, "agent reachable again");
                            failing = false;
                        }
                        if sender.send(Wake::Inventory(store::now_us(), rows)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        if !failing {
                            warn!(%url, error = %format!("{e:#}"), "agent introspection unreachable; retrying");
                            failing = true;
                        }
                    }
                }
                std::thread::sleep(every);
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| warn!(error = %e, "cannot start the agent poller"));
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, CreateKind, ModifyKind, RenameMode};
    use notify::{Event, EventKind};

    #[test]
    fn our_own_reads_do_not_wake_the_loop_but_changes_do() {
        let ev = |kind| Ok(Event::new(kind));
        assert!(!super::wakes(&ev(EventKind::Access(AccessKind::Any))));
        assert!(super::wakes(&ev(EventKind::Create(CreateKind::File))));
        assert!(super::wakes(&ev(EventKind::Modify(ModifyKind::Name(
            RenameMode::Both
        )))));
        assert!(super::wakes(&ev(EventKind::Remove(
            notify::event::RemoveKind::File
        ))));
        assert!(super::wakes(&Err(notify::Error::generic("queue overflow"))));
        // inotify's IN_Q_OVERFLOW, as notify reports it
        assert!(super::wakes(
            &ev(EventKind::Other).map(|e: Event| e.set_flag(notify::event::Flag::Rescan))
        ));
    }
}
