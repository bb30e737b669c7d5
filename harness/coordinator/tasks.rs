//! The tasks of one phase, one per agent, joined so that a task that
//! panicked is reported against its agent instead of vanishing: a run with
//! a probe missing must never come out PASS.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{Id, JoinError, JoinSet};

/// A task that ended without an outcome (it panicked or was aborted).
#[derive(Debug, PartialEq, Eq)]
pub struct TaskLost {
    pub agent: String,
    pub message: String,
}

pub struct AgentTasks<T> {
    set: JoinSet<T>,
    agents: HashMap<Id, String>,
}

impl<T: Send + 'static> AgentTasks<T> {
    pub fn new() -> Self {
        AgentTasks {
            set: JoinSet::new(),
            agents: HashMap::new(),
        }
    }

    pub fn spawn<F>(&mut self, agent: &str, task: F)
    where
        F: Future<Output = T> + Send + 'static,
    {
        let handle = self.set.spawn(task);
        self.agents.insert(handle.id(), agent.to_string());
    }

    /// The next task to end, or None when all have.
    pub async fn next(&mut self) -> Option<Result<T, TaskLost>> {
        let joined = self.set.join_next_with_id().await?;
        Some(match joined {
            Ok((id, value)) => {
                self.agents.remove(&id);
                Ok(value)
            }
            Err(e) => Err(TaskLost {
                agent: self.agents.remove(&e.id()).unwrap_or_default(),
                message: describe(e),
            }),
        })
    }
}

fn describe(e: JoinError) -> String {
    if e.is_cancelled() {
        return "its task was cancelled".into();
    }
    let payload = e.into_panic();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    format!("its task panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_reported_against_its_agent() {
        let mut tasks = AgentTasks::new();
        tasks.spawn("a", async { 1 });
        tasks.spawn("b", async { panic!("probe exploded") });
        let mut ok = Vec::new();
        let mut lost = Vec::new();
        while let Some(outcome) = tasks.next().await {
            match outcome {
                Ok(v) => ok.push(v),
                Err(l) => lost.push(l),
            }
        }
        assert_eq!(ok, vec![1]);
        assert_eq!(
            lost,
            vec![TaskLost {
                agent: "b".into(),
                message: "its task panicked: probe exploded".into()
            }]
        );
    }
}
