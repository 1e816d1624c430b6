//! The DNSENC frontend (stateless DNS encryption, draft-krecicki-dprive-dnsenc-01).
pub mod wire;
