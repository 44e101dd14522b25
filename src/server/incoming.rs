//! Accepting connections within bounds: at most so many at once (the accept
//! loop waits for one to close before taking another), at most so many from
//! one peer address (more are closed as soon as they are accepted), and each
//! one closed if it has not sent the first 24 bytes (the length of HTTP/2's
//! connection preface; a TLS ClientHello is longer) within the handshake
//! timeout, so that silent or trickling sockets cannot hold every slot. Past
//! that, TLS has its own handshake timeout, HTTP/2 its keep-alive pings, and
//! [`connections`](super::connections) the idle timeout and maximum age,
//! which end a connection through its [`Cutoff`] when GOAWAY was not enough.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures_util::task::AtomicWaker;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, oneshot},
    time::{Instant, Sleep},
};
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::Limits;

/// What a connection must send within the handshake timeout: HTTP/2's
/// connection preface is 24 bytes.
const HANDSHAKE_BYTES: usize = 24;

/// How long a connection the server has closed keeps reading what the
/// peer still sends, waiting for the peer to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// How much of what the peer still sends is read and dropped at most.
const LINGER_BYTES: usize = 256 * 1024;

/// Connections from a listener within the server's limits:
/// `max_connections` open at once, `max_connections_per_peer` from one
/// address, each closed if it does not start within the
/// `handshake_timeout`.
#[derive(Debug)]
pub(super) struct Incoming {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    peers: Option<Arc<PeerCounts>>,
    handshake_timeout: Duration,
}

impl Incoming {
    pub(super) fn new(listener: TcpListener, limits: &Limits) -> Incoming {
        Incoming {
            listener,
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            peers: (limits.max_connections_per_peer > 0)
                .then(|| Arc::new(PeerCounts::new(limits.max_connections_per_peer))),
            handshake_timeout: limits.handshake_timeout,
        }
    }

    /// The next connection, once a slot is free. Cancel-safe: a connection
    /// accepted is returned at once.
    pub(super) async fn next(&self) -> BoundedStream {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the slots are never closed");
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let peer_slot = match self.peers.as_ref().map(|p| p.take(peer.ip())) {
                        // Dropped, so closed at once; the slot stays
                        // free for someone else.
                        Some(None) => {
                            tracing::debug!(
                                %peer,
                                "refused a connection: its address holds --max-connections-per-peer"
                            );
                            continue;
                        }
                        counted => counted.flatten(),
                    };
                    let _ = stream.set_nodelay(true);
                    return BoundedStream::new(stream, permit, peer_slot, self.handshake_timeout);
                }
                // Out of file descriptors, a connection reset before accept:
                // pause briefly rather than spin, and keep serving.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Stops the kernel from taking new connections on the listener while
    /// it stays open: their SYNs go unanswered, so their clients try again
    /// (after a second) and then find the port closed, a refusal that any
    /// client or proxy may retry elsewhere. Connections the kernel has taken
    /// already stay in its queue, to be accepted. Closing the listener with
    /// connections in that queue would reset them, and with them the
    /// requests their clients may have sent already.
    ///
    /// `false` where it cannot be done (not Linux, or the kernel refused).
    pub(super) fn refuse_new(&self) -> bool {
        refuse_syns(&self.listener)
    }

    /// Whether connections the kernel has taken wait in its queue to be
    /// accepted; `false` where the kernel cannot tell.
    pub(super) fn waiting(&self) -> bool {
        accept_queue(&self.listener).is_some_and(|queued| queued > 0)
    }
}

/// Classic BPF on the listening socket: drop a TCP segment with SYN set and
/// ACK not (a new connection), keep everything else (the last ACK of a
/// handshake begun before, which puts that connection in the queue).
#[cfg(target_os = "linux")]
fn refuse_syns(listener: &TcpListener) -> bool {
    use std::os::fd::AsRawFd;
    // The filter reads from the TCP header: byte 13 holds its flags.
    const LOAD_FLAGS: libc::sock_filter = bpf(0x30, 0, 0, 13); // ldb [13]
    const SYN_ACK: libc::sock_filter = bpf(0x54, 0, 0, 0x12); // and #(SYN|ACK)
    const IF_SYN_ALONE: libc::sock_filter = bpf(0x15, 0, 1, 0x02); // jeq #SYN, next, skip 1
    const DROP: libc::sock_filter = bpf(0x06, 0, 0, 0); // ret #0
    const KEEP: libc::sock_filter = bpf(0x06, 0, 0, u32::MAX); // ret #all
    const fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
        libc::sock_filter { code, jt, jf, k }
    }
    let mut program = [LOAD_FLAGS, SYN_ACK, IF_SYN_ALONE, DROP, KEEP];
    let filter = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: setsockopt(2) on the listener's open descriptor, with a
    // pointer to a sock_fprog and its size; the kernel copies the program.
    let attached = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const filter).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if attached != 0 {
        tracing::warn!(error = %io::Error::last_os_error(), "could not stop taking new connections before closing the listener");
    }
    attached == 0
}

#[cfg(not(target_os = "linux"))]
fn refuse_syns(_listener: &TcpListener) -> bool {
    false
}

/// How many connections wait in the listener's accept queue: TCP_INFO's
/// `tcpi_unacked`, which for a listening socket is that count.
#[cfg(target_os = "linux")]
fn accept_queue(listener: &TcpListener) -> Option<u32> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain data; all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt(2) on the listener's open descriptor, into a
    // tcp_info of the size given.
    let read = unsafe {
        libc::getsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    (read == 0).then_some(info.tcpi_unacked)
}

#[cfg(not(target_os = "linux"))]
fn accept_queue(_listener: &TcpListener) -> Option<u32> {
    None
}

/// How many connections each peer address holds.
#[derive(Debug)]
struct PeerCounts {
    max: usize,
    /// Only addresses that hold a connection: an entry goes with its last.
    /// Locked when a connection opens or closes, never by a call.
    held: Mutex<HashMap<IpAddr, usize>>,
}

impl PeerCounts {
    fn new(max: usize) -> PeerCounts {
        PeerCounts {
            max,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one more connection from `ip`, unless it holds the most.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<PeerSlot> {
        // One peer, however it is written (an IPv4 client of a dual-stack
        // listener arrives as ::ffff:a.b.c.d).
        let ip = ip.to_canonical();
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }
}

/// One connection counted against its peer address until it closes.
#[derive(Debug)]
struct PeerSlot {
    peers: Arc<PeerCounts>,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut held = self.peers.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

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
    fn new(
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
