//! Both HTTP listeners: the middleware around every request, the admin API with its one error
//! type, `/metrics`, the memory report and the gateway's budget shedding, health, and the limits
//! on slow gateway clients. The gateway's own handlers live in `hydrant-gateway`.

pub(crate) mod api;
mod denylist;
pub(crate) mod error;
pub(crate) mod health;
pub(crate) mod ipni;
pub(crate) mod kubo;
pub(crate) mod memory;
pub(crate) mod metrics;
mod middleware;
mod pins;
mod serve;
pub(crate) mod slow_clients;
pub(crate) mod state;

pub(crate) use denylist::refuse_denied;
pub(crate) use middleware::{HttpStats, LayerConfig, Listener, layer};
pub(crate) use serve::{ConnectionLimits, serve};
