//! Progress display: an indicatif spinner per step on stderr, hidden when
//! stdout is not a terminal (scripts, CI, pipes).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct StepProgress {
    bar: ProgressBar,
}

impl StepProgress {
    pub fn start(total_steps: usize) -> Self {
        let bar = ProgressBar::new(total_steps as u64);
        if !std::io::stdout().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg} ({elapsed})")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        StepProgress { bar }
    }

    pub fn step(&self, message: String) {
        self.bar.set_message(message);
    }

    pub fn done_one(&self) {
        self.bar.inc(1);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
