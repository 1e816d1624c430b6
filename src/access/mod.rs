//! STUB
pub mod acl; pub mod prefix; pub mod rate;
pub mod gate;
pub mod reload;
