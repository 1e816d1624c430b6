//! Test clients: a DNS-over-TLS client ([`DotClient`]), DNS message
//! builders/parsers, plain UDP/TCP DNS exchanges, and TLS helpers shared with
//! the rest of the harness (accept-any-cert verifier, SPKI pin computation).
//!
//! Owns everything a test needs to talk to a DNS server as a client. The DoT
//! client accepts ANY server certificate (signatures are still checked), so
//! pin checks must be done explicitly with
//! [`DotClient::peer_spki_sha256_base64`].
//!
//! Record counting: [`DotClient::app_data_records_received`] counts TLS
//! records with outer content type 23 read off the wire. In TLS 1.3 EVERY
//! encrypted record has outer type 23, including the server's encrypted
//! handshake flight and post-handshake NewSessionTicket messages, so compare
//! counts taken after the handshake (and after tickets arrived), not absolute
//! values.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Connect + handshake must finish within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Crypto helpers

/// The process-default rustls crypto provider (installing the one selected by
/// rustls' crate features if none was installed yet).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    if let Some(p) = CryptoProvider::get_default() {
        return p.clone();
    }
    ClientConfig::builder()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth()
        .crypto_provider()
        .clone()
}

/// SHA-256 using the rustls crypto provider (no extra hashing crate needed).
pub fn sha256(data: &[u8]) -> Vec<u8> {
    let provider = crypto_provider();
    let hash = provider
        .cipher_suites
        .iter()
        .filter_map(|s| s.tls13())
        .map(|s| s.common.hash_provider)
        .find(|h| h.algorithm() == rustls::crypto::hash::HashAlgorithm::SHA256)
        .expect("the rustls crypto provider has no SHA-256 TLS 1.3 suite");
    hash.hash(data).as_ref().to_vec()
}

/// (tag, content start, end) of the DER TLV at `p`.
fn der_tlv(d: &[u8], p: usize) -> Option<(u8, usize, usize)> {
    let tag = *d.get(p)?;
    let first = *d.get(p + 1)? as usize;
    let (len, hdr) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *d.get(p + 2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = p + hdr + len;
    (end <= d.len()).then_some((tag, p + hdr, end))
}

/// The DER SubjectPublicKeyInfo of an X.509 certificate (DER), by walking
/// Certificate -> TBSCertificate -> [version] serial sigAlg issuer validity
/// subject SPKI. Panics on a malformed certificate.
pub fn spki_der(cert_der: &[u8]) -> Vec<u8> {
    let walk = || -> Option<Vec<u8>> {
        let (t, cert_body, _) = der_tlv(cert_der, 0)?;
        if t != 0x30 {
            return None;
        }
        let (t, mut p, _) = der_tlv(cert_der, cert_body)?;
        if t != 0x30 {
            return None;
        }
        if *cert_der.get(p)? == 0xA0 {
            p = der_tlv(cert_der, p)?.2; // [0] version
        }
        for _ in 0..5 {
            p = der_tlv(cert_der, p)?.2; // serial, sigAlg, issuer, validity, subject
        }
        let (t, _, end) = der_tlv(cert_der, p)?;
        (t == 0x30).then(|| cert_der[p..end].to_vec())
    };
    walk().expect("spki_der: malformed X.509 certificate")
}

/// base64(SHA-256(SPKI)) of a DER certificate: the RFC 7858 / RFC 7469 pin.
pub fn spki_pin_base64(cert_der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha256(&spki_der(cert_der)))
}

/// A verifier that accepts any server certificate but still checks the
/// handshake signatures with the provider's algorithms.
#[derive(Debug)]
pub struct AcceptAnyCert(pub Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Presents no client certificate (like `with_no_client_auth`, but one
/// shared instance so that sessions can be resumed across configs).
#[derive(Debug)]
struct NoClientCert;

impl rustls::client::ResolvesClientCert for NoClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

type SharedClientParts =
    (Arc<CryptoProvider>, Arc<dyn ServerCertVerifier>, Arc<dyn rustls::client::ResolvesClientCert>);

fn shared_client_parts() -> SharedClientParts {
    static PARTS: OnceLock<SharedClientParts> = OnceLock::new();
    PARTS
        .get_or_init(|| {
            let provider = crypto_provider();
            (provider.clone(), Arc::new(AcceptAnyCert(provider)), Arc::new(NoClientCert))
        })
        .clone()
}

// ---------------------------------------------------------------------------
// CountingStream

/// Wraps a byte stream and parses the TLS record headers of everything READ
/// through it, counting records by content type. Writes pass through.
pub struct CountingStream<S> {
    inner: S,
    hdr: [u8; 5],
    hdr_len: usize,
    body_left: usize,
    records: usize,
    app_data_records: usize,
}

impl<S> CountingStream<S> {
    pub fn new(inner: S) -> Self {
        CountingStream { inner, hdr: [0; 5], hdr_len: 0, body_left: 0, records: 0, app_data_records: 0 }
    }

    /// Complete record headers seen so far (any content type).
    pub fn records(&self) -> usize {
        self.records
    }

    /// Record headers with content type 23 (application_data) seen so far.
    pub fn app_data_records(&self) -> usize {
        self.app_data_records
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn observe(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(data.len());
                self.body_left -= n;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.hdr_len).min(data.len());
            self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&data[..n]);
            self.hdr_len += n;
            data = &data[n..];
            if self.hdr_len == 5 {
                self.records += 1;
                if self.hdr[0] == 23 {
                    self.app_data_records += 1;
                }
                self.body_left = u16::from_be_bytes([self.hdr[3], self.hdr[4]]) as usize;
                self.hdr_len = 0;
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountingStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            this.observe(&buf.filled()[before..]);
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountingStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------
// DotClient

/// How [`DotClient::connect_with`] sets up TLS.
#[derive(Clone)]
pub struct ClientOptions {
    /// Offered TLS versions (default: TLS 1.3 and 1.2).
    pub versions: Vec<&'static rustls::SupportedProtocolVersion>,
    /// Offered ALPN protocols (default: `["dot"]`; empty = no ALPN extension).
    pub alpn: Vec<Vec<u8>>,
    /// Session cache to resume from and store into. Share one `Arc` between
    /// connects to get resumption (e.g. clone the options); `None` disables
    /// resumption. TLS 1.3 tickets arrive after the handshake: read at least
    /// one answer on a connection before expecting the next one to resume.
    pub resumption: Option<Arc<ClientSessionMemoryCache>>,
    /// SNI / server name (default `dot.example.test`; an IP string sends no SNI).
    pub server_name: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
            alpn: vec![b"dot".to_vec()],
            resumption: None,
            server_name: "dot.example.test".to_string(),
        }
    }
}

impl ClientOptions {
    /// Default options but only TLS 1.2.
    pub fn tls12_only() -> Self {
        ClientOptions { versions: vec![&rustls::version::TLS12], ..Default::default() }
    }

    /// Default options but only TLS 1.3.
    pub fn tls13_only() -> Self {
        ClientOptions { versions: vec![&rustls::version::TLS13], ..Default::default() }
    }

    /// Default options with a fresh session cache; clone the options (they
    /// share the cache) to resume on later connects.
    pub fn with_resumption() -> Self {
        ClientOptions { resumption: Some(Arc::new(ClientSessionMemoryCache::new(64))), ..Default::default() }
    }

    /// The rustls config these options describe. Every config built here
    /// shares one verifier and one (empty) client-cert resolver: rustls only
    /// resumes a session stored by a config with the very same `Arc`s.
    pub fn client_config(&self) -> io::Result<ClientConfig> {
        let (provider, verifier, no_cert) = shared_client_parts();
        let mut cfg = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&self.versions)
            .map_err(io::Error::other)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(no_cert);
        cfg.alpn_protocols = self.alpn.clone();
        cfg.resumption = match &self.resumption {
            Some(cache) => Resumption::store(cache.clone()),
            None => Resumption::disabled(),
        };
        Ok(cfg)
    }
}

/// A DNS-over-TLS client connection (RFC 7858 framing).
pub struct DotClient {
    tls: TlsStream<CountingStream<TcpStream>>,
    rbuf: Vec<u8>,
    chunk: Vec<u8>,
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

impl DotClient {
    /// TLS 1.3 + 1.2, ALPN "dot", any server certificate accepted.
    pub async fn connect(addr: SocketAddr) -> io::Result<DotClient> {
        Self::connect_with(addr, &ClientOptions::default()).await
    }

    /// Connect (TCP + TLS handshake, within [`CONNECT_TIMEOUT`] or
    /// `Err(TimedOut)`).
    pub async fn connect_with(addr: SocketAddr, opts: &ClientOptions) -> io::Result<DotClient> {
        Self::connect_inner(addr, None, opts).await
    }

    /// [`connect`](Self::connect) from the local address `from` (port chosen by the kernel):
    /// the TCP socket is bound to it before connecting, so the server sees a client at `from`.
    /// Any 127.0.0.0/8 address works on Linux without configuration (e.g. 127.0.0.2, 127.0.0.3),
    /// and `::1`. An IPv4 `from` reaching a dual-stack `[::]` listener arrives there as
    /// `::ffff:127.0.0.2`; an IPv6 `from` needs an IPv6 `addr`.
    pub async fn connect_from(addr: SocketAddr, from: IpAddr) -> io::Result<DotClient> {
        Self::connect_inner(addr, Some(from), &ClientOptions::default()).await
    }

    /// [`connect_from`](Self::connect_from) with `opts`.
    pub async fn connect_from_with(addr: SocketAddr, from: IpAddr, opts: &ClientOptions) -> io::Result<DotClient> {
        Self::connect_inner(addr, Some(from), opts).await
    }

    async fn connect_inner(addr: SocketAddr, from: Option<IpAddr>, opts: &ClientOptions) -> io::Result<DotClient> {
        let connector = TlsConnector::from(Arc::new(opts.client_config()?));
        let name = ServerName::try_from(opts.server_name.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let fut = async {
            let tcp = match from {
                None => TcpStream::connect(addr).await?,
                Some(ip) => tcp_connect_from(addr, ip).await?,
            };
            tcp.set_nodelay(true)?;
            connector.connect(name, CountingStream::new(tcp)).await
        };
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, fut)
            .await
            .map_err(|_| timed_out("DoT connect/handshake timed out"))??;
        Ok(DotClient { tls, rbuf: Vec::new(), chunk: vec![0; 32 * 1024] })
    }

    /// Sends one DNS message: 2-byte length + `msg` in one write, flushed.
    pub async fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.send_raw(&framed(msg)).await
    }

    /// Sends `bytes` exactly as given in one write (one TLS record when at
    /// most 16 KiB), flushed.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.tls.write_all(bytes).await?;
        self.tls.flush().await
    }

    /// The next DNS message. `Ok(None)` on a clean close (close_notify, then
    /// EOF) between messages; `Err(UnexpectedEof)` if the TCP stream ended
    /// without close_notify or in the middle of a message. Cancel-safe: bytes
    /// already read are kept for the next call.
    pub async fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if self.rbuf.len() >= 2 {
                let len = u16::from_be_bytes([self.rbuf[0], self.rbuf[1]]) as usize;
                if self.rbuf.len() >= 2 + len {
                    let msg = self.rbuf[2..2 + len].to_vec();
                    self.rbuf.drain(..2 + len);
                    return Ok(Some(msg));
                }
            }
            let n = self.tls.read(&mut self.chunk).await?;
            if n == 0 {
                if self.rbuf.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed with {} bytes of an incomplete message", self.rbuf.len()),
                ));
            }
            self.rbuf.extend_from_slice(&self.chunk[..n]);
        }
    }

    /// [`recv`](Self::recv) with a deadline: `Err(TimedOut)` on timeout.
    pub async fn recv_timeout(&mut self, d: Duration) -> io::Result<Option<Vec<u8>>> {
        tokio::time::timeout(d, self.recv()).await.map_err(|_| timed_out("DoT recv timed out"))?
    }

    /// Sends `msg` and returns the next message; panics on error, close or
    /// after 5 s. For the simple one-query case.
    pub async fn exchange(&mut self, msg: &[u8]) -> Vec<u8> {
        self.send(msg).await.expect("DoT send");
        match self.recv_timeout(Duration::from_secs(5)).await {
            Ok(Some(m)) => m,
            Ok(None) => panic!("DoT server closed the connection instead of answering"),
            Err(e) => panic!("DoT recv failed: {e}"),
        }
    }

    /// True if the server ends the connection (clean close, reset, EOF)
    /// within `d`; messages arriving meanwhile are discarded.
    pub async fn is_closed_within(&mut self, d: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_timeout(left).await {
                Ok(Some(_)) => continue,
                Ok(None) => return true,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return false,
                Err(_) => return true,
            }
        }
    }

    /// TLS records of content type 23 read off the wire so far (see the
    /// module docs for the TLS 1.3 caveat).
    pub fn app_data_records_received(&self) -> usize {
        self.tls.get_ref().0.app_data_records()
    }

    /// All TLS records read off the wire so far.
    pub fn records_received(&self) -> usize {
        self.tls.get_ref().0.records()
    }

    pub fn negotiated_alpn(&self) -> Option<Vec<u8>> {
        self.tls.get_ref().1.alpn_protocol().map(|p| p.to_vec())
    }

    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.tls.get_ref().1.protocol_version()
    }

    pub fn cipher_suite(&self) -> Option<rustls::CipherSuite> {
        self.tls.get_ref().1.negotiated_cipher_suite().map(|s| s.suite())
    }

    /// True if this handshake resumed an earlier session.
    pub fn was_resumed(&self) -> bool {
        self.tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed)
    }

    /// base64(SHA-256(SPKI)) of the server's end-entity certificate. Panics
    /// if the server sent no certificate (e.g. a resumed session).
    pub fn peer_spki_sha256_base64(&self) -> String {
        let certs = self.tls.get_ref().1.peer_certificates().expect("server sent no certificate");
        spki_pin_base64(certs.first().expect("empty certificate chain"))
    }

    /// Sends a TLS close_notify alert without closing the TCP write side:
    /// the connection can still be read from.
    pub async fn close_notify(&mut self) -> io::Result<()> {
        self.tls.get_mut().1.send_close_notify();
        self.tls.flush().await
    }

    /// close_notify and then a TCP FIN (write side shut down).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.tls.shutdown().await
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tls.get_ref().0.get_ref().local_addr()
    }

    pub fn get_ref(&self) -> &TlsStream<CountingStream<TcpStream>> {
        &self.tls
    }

    pub fn get_mut(&mut self) -> &mut TlsStream<CountingStream<TcpStream>> {
        &mut self.tls
    }
}

// ---------------------------------------------------------------------------
// Plain TCP / UDP helpers

/// A TCP connection to `addr` from the local address `from` (kernel-chosen port).
pub async fn tcp_connect_from(addr: SocketAddr, from: IpAddr) -> io::Result<TcpStream> {
    let sock = match from {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    sock.bind(SocketAddr::new(from, 0))?;
    sock.connect(addr).await
}

/// True if the peer closes (EOF or reset) `stream` within `d`. Data arriving
/// meanwhile is read and discarded.
pub async fn is_closed_within(stream: &mut TcpStream, d: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + d;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Sends `msg` over UDP from a fresh 127.0.0.1 socket and returns the first
/// datagram that comes back within `timeout` (`Err(TimedOut)` otherwise).
pub async fn udp_exchange(addr: SocketAddr, msg: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    sock.connect(addr).await?;
    sock.send(msg).await?;
    let mut buf = vec![0u8; 65536];
    let n =
        tokio::time::timeout(timeout, sock.recv(&mut buf)).await.map_err(|_| timed_out("UDP answer timed out"))??;
    buf.truncate(n);
    Ok(buf)
}

/// Reads one 2-byte-length-framed message.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len).await?;
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    r.read_exact(&mut msg).await?;
    Ok(msg)
}

/// `msg` behind its 2-byte length, as DoT and DNS over TCP frame it.
pub fn framed(msg: &[u8]) -> Vec<u8> {
    assert!(msg.len() <= 65535, "DNS message too long to frame");
    let mut frame = Vec::with_capacity(msg.len() + 2);
    frame.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    frame.extend_from_slice(msg);
    frame
}

/// Writes one 2-byte-length-framed message (one write call).
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, msg: &[u8]) -> io::Result<()> {
    w.write_all(&framed(msg)).await?;
    w.flush().await
}

/// One query over a fresh plain-TCP connection; the answer within `timeout`.
pub async fn tcp_exchange(addr: SocketAddr, msg: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    tokio::time::timeout(timeout, async {
        let mut s = TcpStream::connect(addr).await?;
        write_frame(&mut s, msg).await?;
        read_frame(&mut s).await
    })
    .await
    .map_err(|_| timed_out("TCP exchange timed out"))?
}

/// Whether, and as which client, a plain exchange puts a PROXY v2 header ([`super::proxy_v2`])
/// in front of what it sends (before each UDP datagram; once at the start of a TCP connection).
/// A `SocketAddr` converts into [`ProxyClaim::As`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyClaim {
    /// No header: a plain query.
    NoHeader,
    /// A header naming the sending socket's own address and port (what a proxy in front of
    /// itself would say).
    Myself,
    /// A header naming this client address and port.
    As(SocketAddr),
}

impl From<SocketAddr> for ProxyClaim {
    fn from(a: SocketAddr) -> Self {
        ProxyClaim::As(a)
    }
}

impl ProxyClaim {
    /// The header for a socket at `local` talking to `peer` over `transport` (empty for
    /// [`ProxyClaim::NoHeader`]).
    pub fn header(self, transport: super::proxy_v2::Transport, local: SocketAddr, peer: SocketAddr) -> Vec<u8> {
        match self {
            ProxyClaim::NoHeader => Vec::new(),
            ProxyClaim::Myself => super::proxy_v2::header(transport, local, peer),
            ProxyClaim::As(src) => super::proxy_v2::header(transport, src, peer),
        }
    }
}

/// The loopback address of `addr`'s family, port 0: where to bind a socket that talks to it.
fn local_any(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
    }
}

/// [`udp_exchange`] with a PROXY v2 header (UDP) in front of `msg` in the one datagram, claiming
/// `claim` as the client. The answer is returned as it came (a proxy-protocol server answers
/// without a header).
pub async fn udp_exchange_proxied(
    addr: SocketAddr,
    claim: impl Into<ProxyClaim>,
    msg: &[u8],
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    let sock = UdpSocket::bind(local_any(addr)).await?;
    sock.connect(addr).await?;
    let mut datagram = claim.into().header(super::proxy_v2::Transport::Udp, sock.local_addr()?, addr);
    datagram.extend_from_slice(msg);
    sock.send(&datagram).await?;
    let mut buf = vec![0u8; 65536];
    let n =
        tokio::time::timeout(timeout, sock.recv(&mut buf)).await.map_err(|_| timed_out("UDP answer timed out"))??;
    buf.truncate(n);
    Ok(buf)
}

/// One TCP connection to `addr`: a PROXY v2 header (TCP) claiming `claim`, then every message
/// of `msgs` framed, all in one write (pipelined); returns as many answers as there were
/// messages, in the order they arrived, all within `timeout`.
pub async fn tcp_exchange_proxied(
    addr: SocketAddr,
    claim: impl Into<ProxyClaim>,
    msgs: &[Vec<u8>],
    timeout: Duration,
) -> io::Result<Vec<Vec<u8>>> {
    let claim = claim.into();
    tokio::time::timeout(timeout, async {
        let mut s = TcpStream::connect(addr).await?;
        let mut out = claim.header(super::proxy_v2::Transport::Tcp, s.local_addr()?, addr);
        for m in msgs {
            out.extend_from_slice(&framed(m));
        }
        s.write_all(&out).await?;
        let mut answers = Vec::with_capacity(msgs.len());
        for _ in msgs {
            answers.push(read_frame(&mut s).await?);
        }
        Ok(answers)
    })
    .await
    .map_err(|_| timed_out("TCP exchange timed out"))?
}

/// Blocking [`udp_exchange`] (for non-async code such as process start-up).
pub fn udp_exchange_blocking(addr: SocketAddr, msg: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    udp_exchange_blocking_proxied(addr, ProxyClaim::NoHeader, msg, timeout)
}

/// Blocking [`udp_exchange_proxied`].
pub fn udp_exchange_blocking_proxied(
    addr: SocketAddr,
    claim: impl Into<ProxyClaim>,
    msg: &[u8],
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    udp_exchange_blocking_at(local_any(addr), addr, claim, msg, timeout)
}

/// Blocking [`udp_exchange`] from the local address `from` (another loopback address: another
/// client).
pub fn udp_exchange_blocking_from(
    from: IpAddr,
    addr: SocketAddr,
    msg: &[u8],
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    udp_exchange_blocking_at(SocketAddr::new(from, 0), addr, ProxyClaim::NoHeader, msg, timeout)
}

fn udp_exchange_blocking_at(
    local: SocketAddr,
    addr: SocketAddr,
    claim: impl Into<ProxyClaim>,
    msg: &[u8],
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    let sock = std::net::UdpSocket::bind(local)?;
    sock.connect(addr)?;
    sock.set_read_timeout(Some(timeout))?;
    let mut datagram = claim.into().header(super::proxy_v2::Transport::Udp, sock.local_addr()?, addr);
    datagram.extend_from_slice(msg);
    sock.send(&datagram)?;
    let mut buf = vec![0u8; 65536];
    let n = sock.recv(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Blocking [`tcp_exchange`].
pub fn tcp_exchange_blocking(addr: SocketAddr, msg: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    tcp_exchange_blocking_proxied(addr, ProxyClaim::NoHeader, msg, timeout)
}

/// Blocking [`tcp_exchange`] behind a PROXY v2 header (TCP) claiming `claim`.
pub fn tcp_exchange_blocking_proxied(
    addr: SocketAddr,
    claim: impl Into<ProxyClaim>,
    msg: &[u8],
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    let s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    tcp_exchange_blocking_on(s, addr, claim, msg, timeout)
}

/// Blocking [`tcp_exchange`] from the local address `from` (another loopback address: another
/// client). An error when the connection closes without an answer.
pub fn tcp_exchange_blocking_from(
    from: IpAddr,
    addr: SocketAddr,
    msg: &[u8],
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect_timeout(&addr.into(), timeout)?;
    tcp_exchange_blocking_on(socket.into(), addr, ProxyClaim::NoHeader, msg, timeout)
}

fn tcp_exchange_blocking_on(
    mut s: std::net::TcpStream,
    addr: SocketAddr,
    claim: impl Into<ProxyClaim>,
    msg: &[u8],
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut out = claim.into().header(super::proxy_v2::Transport::Tcp, s.local_addr()?, addr);
    out.extend_from_slice(&framed(msg));
    s.write_all(&out)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut out = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut out)?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// DNS messages

/// A query with RD=1 and no EDNS.
pub fn query(name: &str, rtype: RecordType, id: u16) -> Vec<u8> {
    query_message(name, rtype, id, false).to_vec().expect("encode query")
}

fn query_message(name: &str, rtype: RecordType, id: u16, cd: bool) -> Message {
    let name = Name::from_ascii(name).unwrap_or_else(|e| panic!("bad query name {name:?}: {e}"));
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .set_checking_disabled(cd);
    m.add_query(Query::query(name, rtype));
    m
}

/// A query with RD=1 and an OPT record advertising 1232 bytes, the DO bit as
/// given, CD as given, and `options` (code, data) in exactly this order.
pub fn query_edns(
    name: &str,
    rtype: RecordType,
    id: u16,
    do_bit: bool,
    cd: bool,
    options: Vec<(u16, Vec<u8>)>,
) -> Vec<u8> {
    query_edns_sized(name, rtype, id, 1232, do_bit, cd, options)
}

/// [`query_edns`] with a chosen advertised UDP payload size.
pub fn query_edns_sized(
    name: &str,
    rtype: RecordType,
    id: u16,
    udp_size: u16,
    do_bit: bool,
    cd: bool,
    options: Vec<(u16, Vec<u8>)>,
) -> Vec<u8> {
    let mut msg = query_message(name, rtype, id, cd).to_vec().expect("encode query");
    let mut rdata = Vec::new();
    for (code, data) in &options {
        rdata.extend_from_slice(&code.to_be_bytes());
        rdata.extend_from_slice(&(data.len() as u16).to_be_bytes());
        rdata.extend_from_slice(data);
    }
    msg.push(0); // root owner
    msg.extend_from_slice(&41u16.to_be_bytes());
    msg.extend_from_slice(&udp_size.to_be_bytes());
    msg.extend_from_slice(&[0, 0]); // extended RCODE, version
    msg.extend_from_slice(&(if do_bit { 0x8000u16 } else { 0 }).to_be_bytes());
    msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    msg.extend_from_slice(&rdata);
    let arcount = u16::from_be_bytes([msg[10], msg[11]]) + 1;
    msg[10..12].copy_from_slice(&arcount.to_be_bytes());
    msg
}

/// Parses a DNS message; panics with the length and error if it does not.
pub fn parse(msg: &[u8]) -> Message {
    Message::from_vec(msg).unwrap_or_else(|e| panic!("cannot parse DNS message of {} bytes: {e}", msg.len()))
}

/// The message ID from raw bytes (panics if shorter than 2 bytes).
pub fn msg_id(msg: &[u8]) -> u16 {
    u16::from_be_bytes([msg[0], msg[1]])
}

/// The A records of the answer section.
pub fn a_records(msg: &Message) -> Vec<Ipv4Addr> {
    msg.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// The TXT records of the answer section, each as its strings concatenated.
pub fn txt_records(msg: &Message) -> Vec<Vec<u8>> {
    msg.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::TXT(t) => Some(t.iter().flat_map(|s| s.iter().copied()).collect()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// EDNS Client Subnet (RFC 7871) and Extended DNS Errors (RFC 8914)

/// EDNS option code of Client Subnet.
pub const OPT_ECS: u16 = 8;
/// EDNS option code of Extended DNS Error.
pub const OPT_EDE: u16 = 15;

/// An ECS option's data for `ip` cut to `source_prefix` bits: family (1 IPv4, 2 IPv6), the
/// source prefix, scope prefix 0, and the first ceil(prefix/8) address bytes with the bits
/// past the prefix zeroed (RFC 7871 section 6; BIND answers FORMERR to stray bits).
pub fn ecs_option(ip: IpAddr, source_prefix: u8) -> (u16, Vec<u8>) {
    let (family, octets): (u16, Vec<u8>) = match ip {
        IpAddr::V4(v4) => (1, v4.octets().to_vec()),
        IpAddr::V6(v6) => (2, v6.octets().to_vec()),
    };
    assert!(source_prefix as usize <= octets.len() * 8, "prefix /{source_prefix} too long for {ip}");
    let bytes = (source_prefix as usize).div_ceil(8);
    let mut addr = octets[..bytes].to_vec();
    if source_prefix % 8 != 0 {
        addr[bytes - 1] &= 0xFFu8 << (8 - source_prefix % 8);
    }
    let mut data = family.to_be_bytes().to_vec();
    data.extend_from_slice(&[source_prefix, 0]);
    data.extend_from_slice(&addr);
    (OPT_ECS, data)
}

/// A query (RD=1, EDNS 1232 bytes, no DO) whose OPT holds one ECS option: `ip` cut to
/// `source_prefix` (see [`ecs_option`]); e.g. a client claiming 198.51.100.0/24 itself.
pub fn query_ecs(name: &str, rtype: RecordType, id: u16, ip: IpAddr, source_prefix: u8) -> Vec<u8> {
    query_edns(name, rtype, id, false, false, vec![ecs_option(ip, source_prefix)])
}

/// One decoded ECS option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ecs {
    pub family: u16,
    pub source_prefix: u8,
    pub scope_prefix: u8,
    /// The address bytes as sent (ceil(source/8) of them).
    pub address: Vec<u8>,
}

impl Ecs {
    /// The address padded with zeros to a full IPv4/IPv6 address (`None` for another family
    /// or too many bytes).
    pub fn ip(&self) -> Option<IpAddr> {
        let mut full = vec![0u8; if self.family == 1 { 4 } else { 16 }];
        if !matches!(self.family, 1 | 2) || self.address.len() > full.len() {
            return None;
        }
        full[..self.address.len()].copy_from_slice(&self.address);
        Some(match self.family {
            1 => IpAddr::from(<[u8; 4]>::try_from(full).unwrap()),
            _ => IpAddr::from(<[u8; 16]>::try_from(full).unwrap()),
        })
    }
}

/// `ADDRESS/SOURCE/SCOPE`, as BIND's query log writes it (`127.0.0.0/24/0`).
impl std::fmt::Display for Ecs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip() {
            Some(ip) => write!(f, "{ip}/{}/{}", self.source_prefix, self.scope_prefix),
            None => {
                write!(f, "family {} {:02x?}/{}/{}", self.family, self.address, self.source_prefix, self.scope_prefix)
            }
        }
    }
}

/// Every ECS option in the OPT record of `msg` (raw wire bytes), in wire order: empty without
/// an OPT or without ECS. Malformed ones (shorter than 4 bytes) are skipped.
pub fn ecs_options(msg: &[u8]) -> Vec<Ecs> {
    let Some(opt) = super::fake_backend::find_opt(msg) else { return Vec::new() };
    opt.options()
        .into_iter()
        .filter(|(code, data)| *code == OPT_ECS && data.len() >= 4)
        .map(|(_, d)| Ecs {
            family: u16::from_be_bytes([d[0], d[1]]),
            source_prefix: d[2],
            scope_prefix: d[3],
            address: d[4..].to_vec(),
        })
        .collect()
}

/// Every Extended DNS Error option in the OPT record of `msg`: (INFO-CODE, EXTRA-TEXT).
pub fn ede_options(msg: &[u8]) -> Vec<(u16, String)> {
    let Some(opt) = super::fake_backend::find_opt(msg) else { return Vec::new() };
    opt.options()
        .into_iter()
        .filter(|(code, data)| *code == OPT_EDE && data.len() >= 2)
        .map(|(_, d)| (u16::from_be_bytes([d[0], d[1]]), String::from_utf8_lossy(&d[2..]).into_owned()))
        .collect()
}
