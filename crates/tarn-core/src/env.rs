//! The environment tarn-core reads: the clock and the source of unique ids. Injected so that
//! tests can be deterministic; the defaults use the system clock and random UUIDs.

use std::fmt::Debug;
use std::sync::Arc;

/// Milliseconds since the Unix epoch.
pub trait Clock: Debug + Send + Sync {
    fn now_ms(&self) -> i64;
}

/// Unique names for new objects (data files, manifests).
pub trait IdGenerator: Debug + Send + Sync {
    fn next_id(&self) -> String;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now_ms(&self) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the system clock is after 1970");
        i64::try_from(now.as_millis()).expect("milliseconds since 1970 fit in i64")
    }
}

#[derive(Debug, Default)]
pub struct UuidGenerator;

impl IdGenerator for UuidGenerator {
    #[allow(clippy::disallowed_methods)]
    fn next_id(&self) -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

/// The clock and id generator a table uses.
#[derive(Debug, Clone)]
pub struct Env {
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
}

impl Default for Env {
    fn default() -> Self {
        Env {
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidGenerator),
        }
    }
}

impl Env {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn next_id(&self) -> String {
        self.ids.next_id()
    }
}
