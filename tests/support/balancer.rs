//! A small TCP load balancer, as a team would put in front of several hubs: each new connection
//! goes to the next backend in turn, or past it to the one after when it does not accept.
//! Connections to a backend that dies simply break, as they would behind a real one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct Balancer {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
    /// How many connections went to each backend.
    pub routed: Arc<Vec<AtomicUsize>>,
}

impl Balancer {
    pub async fn start(backends: Vec<u16>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the balancer");
        let port = listener.local_addr().expect("addr").port();
        let routed: Arc<Vec<AtomicUsize>> =
            Arc::new(backends.iter().map(|_| AtomicUsize::new(0)).collect());
        let counts = routed.clone();
        let task = tokio::spawn(async move {
            let next = AtomicUsize::new(0);
            while let Ok((mut inbound, _)) = listener.accept().await {
                let first = next.fetch_add(1, Ordering::Relaxed);
                let backends = backends.clone();
                let counts = counts.clone();
                tokio::spawn(async move {
                    for i in 0..backends.len() {
                        let at = (first + i) % backends.len();
                        if let Ok(mut outbound) =
                            tokio::net::TcpStream::connect(("127.0.0.1", backends[at])).await
                        {
                            counts[at].fetch_add(1, Ordering::Relaxed);
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            return;
                        }
                    }
                });
            }
        });
        Self { port, task, routed }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
