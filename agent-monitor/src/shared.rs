//! [`Shared`]: a setting that SIGHUP ([`crate::reload`]) can replace while readers keep
//! the value they took. A leaf: every module that holds a reloadable setting uses it.

use std::sync::{Arc, RwLock};

/// A setting that can be replaced while readers hold the old value.
#[derive(Debug, Default)]
pub struct Shared<T>(RwLock<Arc<T>>);

impl<T> Shared<T> {
    pub fn new(v: T) -> Shared<T> {
        Shared(RwLock::new(Arc::new(v)))
    }

    pub fn get(&self) -> Arc<T> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn set(&self, v: T) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(v);
    }
}
