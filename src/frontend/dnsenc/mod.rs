//! DNSENC (draft-krecicki-dprive-dnsenc-01): stateless DNS encryption over plain DNS.
pub mod crypto;
pub mod keys;
