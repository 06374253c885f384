//! avs-core: the avs-runtime library. It owns the connection to AVS, authorization, capability
//! publishing and the plugin host — and knows no AVS interface by name: every interface is a plugin.
#![allow(non_local_definitions)]

pub mod auth;
pub mod capabilities;
pub mod config;
pub mod control;
pub mod devices;
pub mod directives;
pub mod events;
pub mod focus;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod https;
pub mod media;
pub mod multipart;
pub mod observe;
pub mod outbox;
pub mod plugins;
pub mod process;
pub mod protocol;
pub mod runtime;
pub mod schema;
pub mod secret_file;
pub mod storage;
pub(crate) mod tasks;
pub mod template;
pub mod tls;
pub mod transport;
