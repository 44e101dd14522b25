//! Connections counted per peer address, for `max_connections_per_peer`:
//! a slot taken when one is accepted, given back when it closes.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

/// How many connections each peer address holds.
#[derive(Debug)]
pub(super) struct PeerCounts {
    max: usize,
    /// Only addresses that hold a connection: an entry goes with its last.
    /// Locked when a connection opens or closes, never by a call.
    held: Mutex<HashMap<IpAddr, usize>>,
}

impl PeerCounts {
    pub(super) fn new(max: usize) -> PeerCounts {
        PeerCounts {
            max,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one more connection from `ip`, unless it holds the most.
    pub(super) fn take(self: &Arc<Self>, ip: IpAddr) -> Option<PeerSlot> {
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
pub(super) struct PeerSlot {
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
