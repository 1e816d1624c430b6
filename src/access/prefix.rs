use std::net::IpAddr;
#[derive(Debug, Clone, Copy, PartialEq, Eq)] pub struct ClientPrefix { pub v4: u8, pub v6: u8 }
impl ClientPrefix { pub const DEFAULT: ClientPrefix = ClientPrefix { v4: 32, v6: 64 };
 pub fn parse(_s: &str) -> Result<ClientPrefix, &'static str> { Ok(Self::DEFAULT) }
 pub fn key(&self, ip: IpAddr) -> ClientKey { ClientKey(ip) } }
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)] pub struct ClientKey(IpAddr);
