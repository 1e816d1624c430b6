use std::net::IpAddr; use std::sync::Arc;
#[derive(Debug, Clone, Copy, PartialEq, Eq)] pub struct Cidr(IpAddr);
impl std::str::FromStr for Cidr { type Err = String; fn from_str(s: &str) -> Result<Cidr, String> { s.parse().map(Cidr).map_err(|_| format!("bad {s}")) } }
impl std::fmt::Display for Cidr { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{}", self.0) } }
pub struct Acl;
impl Acl { pub fn new(_allow: &[Cidr], _deny: &[Cidr]) -> Acl { Acl } pub fn allows(&self, _ip: IpAddr) -> bool { true } pub fn is_open(&self) -> bool { true } }
pub struct SharedAcl(std::sync::RwLock<Arc<Acl>>);
impl SharedAcl { pub fn new(acl: Acl) -> SharedAcl { SharedAcl(std::sync::RwLock::new(Arc::new(acl))) } pub fn current(&self) -> Arc<Acl> { self.0.read().unwrap().clone() } pub fn replace(&self, acl: Acl) { *self.0.write().unwrap() = Arc::new(acl) } }
