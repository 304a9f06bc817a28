use std::process::ExitCode;

use clap::Parser;
use credtrail_collector::{AlreadyRunning, Config, Stop, Wake};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = if config.once {
        credtrail_collector::run_once(&config)
    } else {
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = Stop::default();
        if let Err(e) = forward_signals(tx.clone(), stop.clone()) {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::from(2);
        }
        credtrail_collector::follow_until(&config, tx, rx, stop)
    };
    match result {
        Ok(summary) => {
            eprintln!(
                "credtrail-collector: {} lines stored, {} rejected, {} gaps, {} inventory rows, {} segment files",
                summary.lines,
                summary.rejected,
                summary.gaps,
                summary.inventory_rows,
                summary.segment_files
            );
            if config.s3_url.is_some() {
                eprintln!(
                    "credtrail-collector: {} segments shipped to S3, {} publications held by a full backlog",
                    summary.segments_shipped, summary.publications_held
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) if e.downcast_ref::<AlreadyRunning>().is_some() => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// SIGTERM (systemd, ECS) and SIGINT request a stop (seen between two batches of a backlog)
/// and wake the loop with a [`Wake::Shutdown`].
fn forward_signals(tx: std::sync::mpsc::Sender<Wake>, stop: Stop) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                stop.request();
                let _ = tx.send(Wake::Shutdown);
            }
        })?;
    Ok(())
}
