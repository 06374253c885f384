//! The few AVS messages the core itself speaks because they belong to the connection, not to an
//! interface: the post-connect SynchronizeState, ExceptionEncountered for directives nobody could handle,
//! and the System directives that change the connection or the authorization. Every other namespace is
//! known only to the plugin that declares it.

pub const SYSTEM: &str = "System";
pub const SYNCHRONIZE_STATE: &str = "SynchronizeState";
pub const EXCEPTION_ENCOUNTERED: &str = "ExceptionEncountered";
pub const REVOKE_AUTHORIZATION: &str = "RevokeAuthorization";
pub const SET_ENDPOINT: &str = "SetEndpoint";

pub const DIRECTIVES_PATH: &str = "/v20160207/directives";
pub const EVENTS_PATH: &str = "/v20160207/events";
pub const PING_PATH: &str = "/ping";
pub const ENVELOPE_VERSION: &str = "20160207";
