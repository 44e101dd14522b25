//! Accepting connections within bounds: at most so many at once (the accept
//! loop waits for one to close before taking another), at most so many from
//! one peer address (more are closed as soon as they are accepted), and each
//! one closed if it has not sent the first 24 bytes (the length of HTTP/2's
//! connection preface; a TLS ClientHello is longer) within the handshake
//! timeout, so that silent or trickling sockets cannot hold every slot. Past
//! that, TLS has its own handshake timeout, HTTP/2 its keep-alive pings, and
//! [`connections`](super::connections) the idle timeout and maximum age,
//! which end a connection through its [`Cutoff`](super::stream::Cutoff) when GOAWAY was not enough.

use std::{sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::Semaphore};

use super::{Limits, peers::PeerCounts, stream::BoundedStream};

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
        tracing::warn!(error = %std::io::Error::last_os_error(), "could not stop taking new connections before closing the listener");
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
