//! The one collector: workers send events over a channel; this thread owns
//! the bundle and rewrites run.json after each batch, so a crash keeps what
//! finished.

use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;

use infraqual_probes::ProbeResult;
use infraqual_reports::bundle::BundleWriter;

pub enum Event {
    Result {
        node: String,
        result: Box<ProbeResult>,
    },
    Error {
        node: String,
        probe: Option<String>,
        message: String,
    },
}

pub struct Collector {
    handle: JoinHandle<anyhow::Result<BundleWriter>>,
}

impl Collector {
    pub fn start(bundle: BundleWriter) -> (Sender<Event>, Collector) {
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("collector".into())
            .spawn(move || collect(bundle, rx))
            .expect("spawning the collector thread");
        (tx, Collector { handle })
    }

    /// Waits for every sender to be dropped and returns the bundle.
    pub fn finish(self) -> anyhow::Result<BundleWriter> {
        self.handle
            .join()
            .map_err(|_| anyhow::anyhow!("the collector thread panicked"))?
    }
}

fn collect(mut bundle: BundleWriter, rx: Receiver<Event>) -> anyhow::Result<BundleWriter> {
    let apply = |bundle: &mut BundleWriter, event: Event| match event {
        Event::Result { node, result } => bundle.push_result(&node, *result),
        Event::Error {
            node,
            probe,
            message,
        } => bundle.push_error(&node, probe.as_deref(), &message),
    };
    while let Ok(first) = rx.recv() {
        apply(&mut bundle, first);
        while let Ok(more) = rx.try_recv() {
            apply(&mut bundle, more);
        }
        bundle.save()?;
    }
    Ok(bundle)
}
