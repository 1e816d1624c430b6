//! Frontends: where queries come from. Each one turns its clients' traffic into checked
//! queries for the relay core and implements `relay::ReplyTo` to take the answers back.
//! DoT is the first; DNSCrypt-style stateless encryption over UDP and the private-subdomain
//! gateway are meant to be siblings of `dot/`, touching nothing outside their own folder
//! but a line in the worker that starts them.
pub mod dot;
