//! A connection's answer queue: the `ReplyTo` the relay delivers to, and the count of the
//! connection's queries not yet answered on the wire, which drives read backpressure.
//!
//! Answers are appended, already framed (DoT's 2-octet length prefix), to one buffer, so that
//! all answers ready when the writer runs leave in one write (DoT: in one TLS record; DoH makes
//! each its own HTTP response, and finds its request by the DNS ID it gave the query). The buffer is bounded by the in-flight
//! cap: the connection reads no new query while `outstanding` is at the cap, and every queued
//! answer is counted in `outstanding` until it is written.

use std::cell::{Cell, RefCell};

use std::task::{Context, Poll, Waker};

use super::framing::{append_framed, append_framed_with};

/// A queue buffer grown past this (by large answers) is given back once written.
const KEEP_CAPACITY: usize = 16 * 1024;
use crate::dns;
use crate::edns::{self, HopOptions};
use crate::relay::ReplyTo;
use crate::stats::Frontend;

pub struct AnswerQueue {
    /// Whose answers these are, for the relay's count.
    frontend: Frontend,
    /// Framed answers not yet handed to TLS.
    framed: RefCell<Vec<u8>>,
    /// Answers in `framed`.
    queued: Cell<u32>,
    /// Queries read from the client whose answer has not been handed to TLS yet.
    outstanding: Cell<u32>,
    /// The connection is gone: answers are dropped.
    closed: Cell<bool>,
    /// The worker is shutting down: the connection reads no more and closes once its answers
    /// are out.
    draining: Cell<bool>,
    /// The idle timeout in 100 ms units, stated in edns-tcp-keepalive (RFC 7828).
    keepalive_100ms: Cell<u16>,
    /// Something arrived (an answer, or drain began) since the connection last looked.
    woken: Cell<bool>,
    /// The connection task's waker, kept between waits: a single-threaded stand-in for tokio's
    /// `Notify`, without its mutex and without a waker clone per wait.
    waker: Cell<Option<Waker>>,
}

impl AnswerQueue {
    pub fn new(frontend: Frontend) -> AnswerQueue {
        AnswerQueue {
            frontend,
            framed: RefCell::default(),
            queued: Cell::default(),
            outstanding: Cell::default(),
            closed: Cell::default(),
            draining: Cell::default(),
            keepalive_100ms: Cell::default(),
            woken: Cell::default(),
            waker: Cell::default(),
        }
    }

    /// Sets the idle timeout that answers asking for edns-tcp-keepalive state.
    pub fn set_idle_timeout(&self, idle: std::time::Duration) {
        self.keepalive_100ms.set((idle.as_millis() / 100).min(u16::MAX as u128) as u16);
    }

    /// A query was handed to the relay.
    pub fn relayed(&self) {
        self.outstanding.set(self.outstanding.get() + 1);
    }

    /// Queues an answer made locally for `query` (it is never forwarded).
    pub fn push_local(&self, query: &[u8], rcode: u8) {
        append_framed_with(&mut self.framed.borrow_mut(), |out| {
            dns::write_local_answer(query, dns::id(query), rcode, out)
        });
        self.queued.set(self.queued.get() + 1);
        self.outstanding.set(self.outstanding.get() + 1);
    }

    /// Queues an answer made locally for `query` with an Extended DNS Error (RFC 8914) saying
    /// why, when the query speaks EDNS.
    pub fn push_local_ede(&self, query: &[u8], rcode: u8, info_code: u16, extra_text: &str) {
        append_framed_with(&mut self.framed.borrow_mut(), |out| {
            edns::write_local_answer_with_ede(query, dns::id(query), rcode, info_code, extra_text, out)
        });
        self.queued.set(self.queued.get() + 1);
        self.outstanding.set(self.outstanding.get() + 1);
    }

    pub fn outstanding(&self) -> u32 {
        self.outstanding.get()
    }

    pub fn has_output(&self) -> bool {
        self.queued.get() > 0
    }

    /// Hands every queued answer, framed and joined, to `write` (DoT encrypts them into one
    /// TLS record per 16 KiB; DoH may rewrite their IDs in place); they stop counting as
    /// outstanding. The buffer is given back when nothing else is outstanding, so an idle
    /// connection holds none.
    pub fn write_out<E>(&self, write: impl FnOnce(&mut [u8]) -> Result<(), E>) -> Result<(), E> {
        let mut framed = self.framed.borrow_mut();
        write(&mut framed)?;
        self.outstanding.set(self.outstanding.get() - self.queued.get());
        self.queued.set(0);
        if self.outstanding.get() == 0 || framed.capacity() > KEEP_CAPACITY {
            *framed = Vec::new();
        } else {
            framed.clear();
        }
        Ok(())
    }

    /// Shutdown: wakes the connection, which reads no more and closes once its answers are out.
    pub fn begin_drain(&self) {
        self.draining.set(true);
        self.wake();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Ready once something arrived since the last time it was ready; otherwise keeps the
    /// task's waker (cloned only when the task changes) to be woken when something does.
    pub fn poll_woken(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.woken.replace(false) {
            return Poll::Ready(());
        }
        let kept = self.waker.take();
        self.waker.set(match kept {
            Some(waker) if waker.will_wake(cx.waker()) => Some(waker),
            _ => Some(cx.waker().clone()),
        });
        Poll::Pending
    }

    fn wake(&self) {
        self.woken.set(true);
        let waker = self.waker.take();
        if let Some(waker) = &waker {
            waker.wake_by_ref();
        }
        self.waker.set(waker);
    }

    /// The connection is closing: later answers are dropped.
    pub fn close(&self) {
        self.closed.set(true);
        // The relay may hold this queue until its queries time out; the task need not live on.
        self.waker.take();
        let mut framed = self.framed.borrow_mut();
        framed.clear();
        framed.shrink_to_fit();
    }
}

impl ReplyTo for AnswerQueue {
    fn frontend(&self) -> Frontend {
        self.frontend
    }

    fn deliver(&self, answer: &[u8], tag: u8) {
        if self.closed.get() {
            return;
        }
        let mut framed = self.framed.borrow_mut();
        if tag == 0 {
            append_framed(&mut framed, answer);
        } else {
            // The query asked this hop for keepalive or padding (see `edns`).
            let hop = HopOptions::from_tag(tag);
            append_framed_with(&mut framed, |out| edns::append_answer(answer, hop, self.keepalive_100ms.get(), out));
        }
        drop(framed);
        self.queued.set(self.queued.get() + 1);
        self.wake();
    }

    fn is_closed(&self) -> bool {
        self.closed.get()
    }
}
