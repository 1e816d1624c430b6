//! The TLS record layer of one connection, over rustls's unbuffered API: ciphertext in,
//! plaintext out to a callback; answers in, ciphertext appended to the worker's output buffer.
//!
//! Why unbuffered: the buffered `ServerConnection` owns its own read and write buffers, about
//! 6 kB per idle connection, and copies every byte once more. Here the caller owns every
//! buffer: the worker reads into one shared buffer, rustls decrypts from it, encrypts straight
//! into the worker's shared output buffer, and an idle connection holds only rustls's state
//! (about 2 kB). See `../shared/notes/performance-facts.md` §1.
//!
//! Owns the rustls connection and nothing else: it never touches a socket and never waits.

use std::ops::ControlFlow;
use std::sync::Arc;

use rustls::server::{ServerConfig, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus};

/// Bytes waiting to be written to a socket, appended to by TLS. `buf` is kept zero-filled up to
/// its length so that rustls can be handed `&mut [u8]` room without re-initialising it.
#[derive(Default)]
pub struct Output {
    buf: Vec<u8>,
    filled: usize,
}

/// An output buffer grown past this by a burst (large answers) is given back once empty.
const KEEP_OUTPUT: usize = 256 * 1024;

impl Output {
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.filled]
    }

    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    pub fn clear(&mut self) {
        self.filled = 0;
        if self.buf.len() > KEEP_OUTPUT {
            self.buf = Vec::new();
        }
    }

    /// Room for at least `at_least` more bytes.
    fn room(&mut self, at_least: usize) -> &mut [u8] {
        if self.buf.len() - self.filled < at_least {
            let grown = (self.filled + at_least).max(self.buf.len() * 2).max(16 * 1024);
            self.buf.resize(grown, 0);
        }
        &mut self.buf[self.filled..]
    }

    fn commit(&mut self, written: usize) {
        self.filled += written;
    }
}

/// What feeding ciphertext achieved.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fed {
    /// Bytes from the front of the input that were whole records and are now used up; the
    /// rest is the start of a record to keep for the next read.
    pub consumed: usize,
    /// The client sent close_notify.
    pub peer_closed: bool,
}

/// Failure of the TLS layer. Any alert rustls queued for the client is already in the output.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(#[from] pub rustls::Error);

pub struct TlsSession {
    conn: UnbufferedServerConnection,
    /// rustls has reached the state where application data may be written.
    established: bool,
}

impl TlsSession {
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsSession, TlsError> {
        Ok(TlsSession { conn: UnbufferedServerConnection::new(config)?, established: false })
    }

    /// The handshake is over: the client's Finished too, not just our first flight (TLS 1.3
    /// lets the server write after its own Finished, but a client that never sends its
    /// Finished is still handshaking, under the handshake timeout).
    pub fn is_established(&self) -> bool {
        self.established && !self.conn.is_handshaking()
    }

    /// Both sides' Finished are done, though feed may not have reached the state where
    /// application data is written yet (`is_established`); stays true after a later error.
    pub fn handshake_done(&self) -> bool {
        !self.conn.is_handshaking()
    }

    /// The negotiated TLS version and the kind of handshake (full, or resumed from a ticket or
    /// the cache), as `stats::Handshakes::count` takes them.
    pub fn version_and_kind(&self) -> (Option<rustls::ProtocolVersion>, Option<rustls::HandshakeKind>) {
        (self.conn.protocol_version(), self.conn.handshake_kind())
    }

    /// The application protocol agreed by ALPN, once the ClientHello is processed.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// Processes the whole records at the front of `incoming`: handshake messages are answered
    /// into `out`, and the plaintext of each application-data record goes to `plaintext` (which
    /// returns `Break` to stop: the rest of the input is then left unconsumed).
    pub fn feed(
        &mut self,
        incoming: &mut [u8],
        out: &mut Output,
        mut plaintext: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> Result<Fed, TlsError> {
        let mut fed = Fed::default();
        loop {
            let UnbufferedStatus { discard, state } = self.conn.process_tls_records(&mut incoming[fed.consumed..]);
            let state = match state {
                Ok(state) => state,
                Err(e) => {
                    self.queue_alerts(out);
                    return Err(e.into());
                }
            };
            let mut done = false;
            match state {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        let record = record?;
                        if plaintext(record.payload).is_break() {
                            done = true;
                            break;
                        }
                    }
                }
                ConnectionState::EncodeTlsData(mut encoder) => encode(|room| encoder.encode(room), out)?,
                // The caller writes `out` before it next waits for the client.
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::BlockedHandshake => done = true,
                ConnectionState::WriteTraffic(_) => {
                    self.established = true;
                    done = true;
                }
                ConnectionState::PeerClosed => fed.peer_closed = true,
                ConnectionState::Closed => {
                    fed.peer_closed = true;
                    done = true;
                }
                // Early data is never enabled (max_early_data_size is 0), so this is rustls
                // misbehaving; refuse rather than loop.
                _ => return Err(rustls::Error::General("unexpected TLS state".into()).into()),
            }
            fed.consumed += discard;
            if done {
                return Ok(fed);
            }
        }
    }

    /// Encrypts `plain` (framed answers, any length) into as few records as TLS allows.
    pub fn encrypt(&mut self, plain: &[u8], out: &mut Output) -> Result<(), TlsError> {
        let mut writer = self.writer(out)?;
        // Room for the records' headers and tags, so the first attempt nearly always fits.
        let room = plain.len() + (plain.len() / 16384 + 1) * 64;
        write_grown(room, out, |room| writer.encrypt(plain, room))
    }

    /// Appends a close_notify alert to `out`. Only after the handshake.
    pub fn close_notify(&mut self, out: &mut Output) -> Result<(), TlsError> {
        let mut writer = self.writer(out)?;
        write_grown(64, out, |room| writer.queue_close_notify(room))
    }

    /// Brings rustls to the state where application data may be written, writing any pending
    /// handshake output (a session ticket, a key update) to `out` first.
    fn writer(
        &mut self,
        out: &mut Output,
    ) -> Result<rustls::unbuffered::WriteTraffic<'_, rustls::server::ServerConnectionData>, TlsError> {
        // Two passes at most: first flush pending TLS output, then the writer. (A loop with the
        // borrow of `self.conn` returned from it does not pass today's borrow checker.)
        for _ in 0..8 {
            match self.conn.process_tls_records(&mut []).state? {
                ConnectionState::EncodeTlsData(mut encoder) => encode(|room| encoder.encode(room), out)?,
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::WriteTraffic(_) => break,
                _ => return Err(rustls::Error::General("TLS not ready for application data".into()).into()),
            }
        }
        match self.conn.process_tls_records(&mut []).state? {
            ConnectionState::WriteTraffic(writer) => Ok(writer),
            _ => Err(rustls::Error::General("TLS not ready for application data".into()).into()),
        }
    }

    /// After an error, rustls has queued an alert for the client: move it to `out`.
    fn queue_alerts(&mut self, out: &mut Output) {
        for _ in 0..4 {
            match self.conn.process_tls_records(&mut []).state {
                Ok(ConnectionState::EncodeTlsData(mut encoder)) => {
                    if encode(|room| encoder.encode(room), out).is_err() {
                        return;
                    }
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                _ => return,
            }
        }
    }
}

/// Runs one rustls `encrypt` or `queue_close_notify` into `out`, first with `room` bytes free, again
/// with what rustls asks for when that was too little.
fn write_grown(
    mut room: usize,
    out: &mut Output,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<(), TlsError> {
    loop {
        match write(out.room(room)) {
            Ok(written) => {
                out.commit(written);
                return Ok(());
            }
            Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => room = required_size,
            Err(EncryptError::EncryptExhausted) => return Err(rustls::Error::EncryptError.into()),
        }
    }
}

/// Runs one rustls `encode`, growing `out` when it asks for more room.
fn encode(mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>, out: &mut Output) -> Result<(), TlsError> {
    let mut need = 4096;
    loop {
        match encode(out.room(need)) {
            Ok(written) => {
                out.commit(written);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => need = required_size,
            Err(EncodeError::AlreadyEncoded) => return Ok(()),
        }
    }
}
