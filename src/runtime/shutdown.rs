//! The shutdown signal: set once by the main thread on SIGTERM/SIGINT, seen by every worker,
//! listener and connection. Cloning a handle is cheap (once per connection, never per query).

use tokio::sync::watch;

/// Sets the signal. Owned by the main thread.
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Waits for the signal.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// True once shutdown has begun.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when shutdown begins (at once if it has). Cancel-safe.
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which only happens as the process ends.
        let _ = self.0.wait_for(|set| *set).await;
    }
}
