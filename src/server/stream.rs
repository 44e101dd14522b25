//! One accepted connection's socket: the connection slots it holds until it
//! closes, the handshake deadline, the [`Cutoff`] that fails it from
//! outside, and the lingering close that keeps a reset from losing answers
//! its peer has not read.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures_util::task::AtomicWaker;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::{OwnedSemaphorePermit, oneshot},
    time::{Instant, Sleep},
};
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::peers::PeerSlot;

/// What a connection must send within the handshake timeout: HTTP/2's
/// connection preface is 24 bytes.
const HANDSHAKE_BYTES: usize = 24;

/// How long a connection the server has closed keeps reading what the
/// peer still sends, waiting for the peer to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// How much of what the peer still sends is read and dropped at most.
const LINGER_BYTES: usize = 256 * 1024;

/// Ends a connection from outside, once its server has been told to close
/// it and it is still open when the grace period ends: from then on its
/// reads and writes fail, which ends the connection whatever state HTTP/2
/// is in (tonic owns the connection and offers no other handle on it).
#[derive(Debug, Default)]
pub(super) struct Cutoff {
    cut: AtomicBool,
    waker: AtomicWaker,
}

impl Cutoff {
    /// Fails the connection's reads and writes from now on.
    pub(super) fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    /// After a read or write came back pending: whether it must fail
    /// instead, or else wake the connection when it is cut.
    fn cut_while_waiting(&self, cx: &Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.is_cut()
    }
}

fn cut_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the connection outlived its grace period",
    )
}

/// A connection holding one of the server's connection slots (and of its
/// peer's) until it closes.
#[derive(Debug)]
pub(super) struct BoundedStream {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    _peer_slot: Option<PeerSlot>,
    /// Until the first `HANDSHAKE_BYTES` arrive: when to give up on the peer.
    handshake: Option<Pin<Box<Sleep>>>,
    /// Bytes received so far, counted until the handshake deadline is lifted.
    received: usize,
    peer: Option<SocketAddr>,
    cutoff: Arc<Cutoff>,
    /// Dropped with the connection: tells whoever holds the receiver that
    /// the connection has closed.
    on_close: Option<oneshot::Sender<()>>,
    /// Once the server has closed its side: until when bytes the peer still
    /// sends are read and dropped, before the socket closes.
    linger: Option<Pin<Box<Sleep>>>,
    /// How many bytes have been dropped so, at most [`LINGER_BYTES`].
    lingered: usize,
}

impl BoundedStream {
    pub(super) fn new(
        stream: TcpStream,
        slot: OwnedSemaphorePermit,
        peer_slot: Option<PeerSlot>,
        handshake_timeout: Duration,
    ) -> Self {
        let peer = stream.peer_addr().ok();
        BoundedStream {
            stream,
            _slot: slot,
            _peer_slot: peer_slot,
            handshake: Some(Box::pin(tokio::time::sleep_until(
                Instant::now() + handshake_timeout,
            ))),
            received: 0,
            peer,
            cutoff: Arc::default(),
            on_close: None,
            linger: None,
            lingered: 0,
        }
    }

    /// The peer's address, when the socket could tell.
    pub(super) fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The address the connection came in on.
    pub(super) fn local_addr(&self) -> Option<SocketAddr> {
        self.stream.local_addr().ok()
    }

    /// What ends this connection from outside.
    pub(super) fn cutoff(&self) -> Arc<Cutoff> {
        self.cutoff.clone()
    }

    /// Resolves once the connection has closed (this stream is dropped).
    pub(super) fn on_close(&mut self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.on_close = Some(tx);
        rx
    }
}

impl AsyncRead for BoundedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.cutoff.is_cut() {
            return Poll::Ready(Err(cut_error()));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if self.handshake.is_some() {
            if let Poll::Ready(Ok(())) = &result {
                self.received += buf.filled().len() - before;
                if self.received >= HANDSHAKE_BYTES {
                    self.handshake = None;
                    return result;
                }
            }
            let deadline = self.handshake.as_mut().expect("checked above");
            if deadline.as_mut().poll(cx).is_ready() {
                tracing::debug!(peer = ?self.peer, "closing a connection that did not start in time");
                return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
            }
        }
        if result.is_pending() && self.cutoff.cut_while_waiting(cx) {
            return Poll::Ready(Err(cut_error()));
        }
        result
    }
}

impl BoundedStream {
    /// `write` on the socket, unless the connection has been cut: a peer
    /// that reads nothing leaves writes pending, and must not stay past its
    /// cutoff for that.
    fn cut_or<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(&mut TcpStream, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if self.cutoff.is_cut() {
            return Poll::Ready(Err(cut_error()));
        }
        let result = write(&mut self.stream, cx);
        if result.is_pending() && self.cutoff.cut_while_waiting(cx) {
            return Poll::Ready(Err(cut_error()));
        }
        result
    }
}

impl AsyncWrite for BoundedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.cut_or(cx, |stream, cx| Pin::new(stream).poll_write(cx, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.cut_or(cx, |stream, cx| Pin::new(stream).poll_flush(cx))
    }

    /// Closes the server's side (FIN), then reads and drops what the peer
    /// still sends until it closes its own or [`LINGER`] has passed: a
    /// socket closed with unread bytes in it answers with a TCP reset, which
    /// makes the peer drop the answers it has not read yet (and a proxy in
    /// front report its request as failed, though it was answered).
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.linger.is_none() {
            std::task::ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            this.linger = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        let mut buffer = [0u8; 4096];
        loop {
            // A peer that keeps sending is not waited for past the linger
            // time or the byte budget, whatever the reads say.
            let linger = this.linger.as_ref().expect("set above");
            if this.cutoff.is_cut()
                || this.lingered >= LINGER_BYTES
                || Instant::now() >= linger.deadline()
            {
                return Poll::Ready(Ok(()));
            }
            let mut read = ReadBuf::new(&mut buffer);
            match Pin::new(&mut this.stream).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                    this.lingered += read.filled().len();
                }
                // The peer has closed its side too, or is gone.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    let linger = this.linger.as_mut().expect("set above");
                    if linger.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Ok(()));
                    }
                    if this.cutoff.cut_while_waiting(cx) {
                        return Poll::Ready(Ok(()));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.cut_or(cx, |stream, cx| {
            Pin::new(stream).poll_write_vectored(cx, bufs)
        })
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for BoundedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}
