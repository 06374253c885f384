//! A connection's I/O behind a valve: closed, every read, write, flush and shutdown pends, so the
//! connection is a dead network to the device — h2 cannot even acknowledge its HTTP/2 PINGs, which it
//! does by itself, below anything a handler sees.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Default)]
pub(crate) struct Valve {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    closed: bool,
    /// The tasks that found the valve closed, to wake when it opens.
    waiting: Vec<Waker>,
}

impl Valve {
    pub(crate) fn close(&self) {
        self.lock().closed = true;
    }

    pub(crate) fn open(&self) {
        let waiting = {
            let mut state = self.lock();
            state.closed = false;
            std::mem::take(&mut state.waiting)
        };
        waiting.into_iter().for_each(Waker::wake);
    }

    fn poll_open(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.lock();
        if !state.closed {
            return Poll::Ready(());
        }
        if !state.waiting.iter().any(|w| w.will_wake(cx.waker())) {
            state.waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `io` with every operation gated by `valve`.
pub(crate) struct Valved<S> {
    io: S,
    valve: Arc<Valve>,
}

impl<S> Valved<S> {
    pub(crate) fn new(io: S, valve: Arc<Valve>) -> Self {
        Valved { io, valve }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Valved<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        ready!(self.valve.poll_open(cx));
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Valved<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.valve.poll_open(cx));
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.valve.poll_open(cx));
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.valve.poll_open(cx));
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.valve.poll_open(cx));
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
