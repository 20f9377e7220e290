//! The simulated agents: one task and one RTE WebSocket each.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};
use deskrec_client::{RteSocket, ServerAddress};
use deskrec_protocol::{AgentMessage, ContactAck, Hello, PROTOCOL_VERSION, ServerMessage};
use futures_util::{StreamExt, stream};

use super::SeededDevice;

/// Connections opened at once while connecting the fleet.
const CONNECT_CONCURRENCY: usize = 32;

/// When each contact was sent and when an agent got it.
pub struct Arrivals {
    times: Mutex<Vec<(Option<Instant>, Option<Instant>)>>,
}

impl Arrivals {
    /// Room for contacts `0..n`.
    pub fn new(n: usize) -> Self {
        Self {
            times: Mutex::new(vec![(None, None); n]),
        }
    }

    /// Contact `n`'s import call starts now.
    pub fn sent(&self, n: usize, at: Instant) {
        self.times.lock().unwrap()[n].0 = Some(at);
    }

    fn arrived(&self, n: usize, at: Instant) {
        if let Some(slot) = self.times.lock().unwrap().get_mut(n) {
            slot.1.get_or_insert(at);
        }
    }

    /// Contacts sent and not (yet) received.
    pub fn missing(&self) -> usize {
        let t = self.times.lock().unwrap();
        t.iter().filter(|(s, a)| s.is_some() && a.is_none()).count()
    }

    /// Latency of every received contact, ms.
    pub fn latencies_ms(&self) -> Vec<f64> {
        let t = self.times.lock().unwrap();
        t.iter()
            .filter_map(|(s, a)| Some(a.as_ref()?.duration_since(*s.as_ref()?).as_secs_f64() * 1e3))
            .collect()
    }
}

/// The connected agents; dropping it disconnects them.
pub struct Fleet {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    failed: Arc<Mutex<Vec<String>>>,
}

impl Fleet {
    /// Whether every agent is still connected.
    pub fn all_alive(&self) -> bool {
        self.failed.lock().unwrap().is_empty() && self.tasks.iter().all(|t| !t.is_finished())
    }

    /// What went wrong, for the error message.
    pub fn failures(&self) -> String {
        let f = self.failed.lock().unwrap();
        format!("{} failed, first: {:?}", f.len(), f.first())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Connects every device, says Hello and waits for each policy.
pub async fn connect_all(
    addr: &ServerAddress,
    devices: &[SeededDevice],
    arrivals: Arc<Arrivals>,
) -> Result<Fleet> {
    let ready = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let sockets: Vec<Result<(RteSocket, &SeededDevice)>> = stream::iter(devices)
        .map(|d| async move {
            let mut socket = RteSocket::connect(addr, &d.credential).await?;
            socket
                .send(&AgentMessage::Hello(Hello {
                    version: PROTOCOL_VERSION,
                    device_id: d.device_id.clone(),
                    windows_login: d.login.clone(),
                    host: "bench".into(),
                    agent_version: "bench".into(),
                    last_contact_cursor: None,
                }))
                .await?;
            match socket.recv().await? {
                Some(ServerMessage::Policy(p)) if p.record => Ok((socket, d)),
                other => bail!("{}: expected a recording policy, got {other:?}", d.login),
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let mut tasks = Vec::with_capacity(devices.len());
    for s in sockets {
        let (socket, _) = s?;
        ready.fetch_add(1, Ordering::Relaxed);
        let (arrivals, failed) = (arrivals.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = serve(socket, &arrivals).await {
                failed.lock().unwrap().push(e.to_string());
            }
        }));
    }
    Ok(Fleet { tasks, failed })
}

/// One agent: timestamps every contact, acknowledges it like a real agent.
async fn serve(mut socket: RteSocket, arrivals: &Arrivals) -> Result<()> {
    loop {
        match socket.recv().await? {
            Some(ServerMessage::Contact(c)) => {
                let at = Instant::now();
                if let Some(n) = c.contact_id.strip_prefix('c').and_then(|n| n.parse().ok()) {
                    arrivals.arrived(n, at);
                }
                socket
                    .send(&AgentMessage::ContactAck(ContactAck { seq: c.seq }))
                    .await?;
            }
            Some(ServerMessage::Error(e)) => bail!("server error: {} {}", e.code, e.message),
            Some(_) => {}
            None => bail!("the server closed the connection"),
        }
    }
}
