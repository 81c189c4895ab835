//! The accept loop under every listener of `giftd serve` (the API over HTTP or HTTPS, `/metrics`
//! on an address of its own). It is what stands between the open internet and the router: a
//! limit on connections open at once, kept below the process's open-file limit; a bounded time
//! for a connection to deliver each request head (the TLS handshake included) and to sit idle
//! between requests; and accept errors that pause and back off instead of spinning. Requests go
//! to an axum router over hyper (HTTP/1.1, and HTTP/2 by ALPN or prior knowledge) with the
//! peer's address as `ConnectInfo`. This module does not look inside requests: body size, header
//! size and the request timeout are the router's.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// File descriptors giftd keeps for itself besides its connections, its database and its
/// webhook deliveries: standard streams, the listening sockets, the runtime's epoll and wake-up
/// descriptors, the data folder's lock, the TLS files read at start, the `/metrics` listener's
/// own connections ([`METRICS_MAX_CONNECTIONS`]), the socket of a connection being accepted
/// only to be closed, and spare.
pub const FILE_RESERVE: u64 = 64;
/// The default connection limit however high the open-file limit: every connection costs
/// memory (hyper's buffers, some tens of KiB more with TLS), and capacity beyond this comes
/// from more processes, not from one process holding more sockets.
pub const MAX_DEFAULT_CONNECTIONS: u64 = 10_000;
/// Connections at once on the `/metrics` listener: a few scrapers use it, one connection each.
pub const METRICS_MAX_CONNECTIONS: usize = 8;
/// Connections at once on the console's own listener (`console.listen`): staff browsers, a
/// few connections each.
pub const CONSOLE_MAX_CONNECTIONS: usize = 256;
/// The first pause after an accept error that is not one connection's own (out of file
/// descriptors, out of memory); each next pause doubles, up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(100);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The shortest time between two warnings that the connection limit is refusing connections:
/// under a flood, one line a minute with a count says it all.
const REFUSAL_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// How long a connection may take, and how many may be open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From a connection's accept to the end of its first request head (the TLS handshake
    /// included), and from the first byte of each later request to the end of its head.
    pub header_read_timeout: Duration,
    /// How long a connection that has been answered may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
}

/// The process's limit on open files (the soft one, which the kernel enforces), or `None` when
/// there is none or it cannot be known.
pub fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection limit: `configured` when it leaves [`FILE_RESERVE`] and `other_files` (the
/// database's, the webhook deliveries') free under `open_file_limit`, otherwise an error that
/// says so; when not configured, what the open-file limit leaves, at most
/// [`MAX_DEFAULT_CONNECTIONS`].
pub fn max_connections(
    configured: Option<u64>,
    other_files: u64,
    open_file_limit: Option<u64>,
) -> anyhow::Result<usize> {
    let reserve = FILE_RESERVE + other_files;
    let room = open_file_limit.map(|limit| limit.saturating_sub(reserve));
    let chosen = match (configured, room, open_file_limit) {
        (Some(configured), Some(room), Some(limit)) if configured > room => anyhow::bail!(
            "the setting limits.max_connections = {configured} does not fit under the open-file limit \
             of {limit}: giftd keeps {reserve} files for its database, webhook deliveries and itself, \
             which leaves room for {room} connections. Raise the open-file limit (ulimit -n, systemd's \
             LimitNOFILE=) or lower limits.max_connections"
        ),
        (Some(configured), _, _) => configured,
        (None, Some(0), Some(limit)) => anyhow::bail!(
            "the open-file limit of {limit} leaves no room for connections: giftd keeps {reserve} \
             files for its database, webhook deliveries and itself. Raise it (ulimit -n, systemd's \
             LimitNOFILE=)"
        ),
        (None, Some(room), _) => room.min(MAX_DEFAULT_CONNECTIONS),
        (None, None, _) => MAX_DEFAULT_CONNECTIONS,
    };
    Ok(usize::try_from(chosen).unwrap_or(usize::MAX))
}

/// A bound socket and how to serve what it accepts.
pub struct Listener {
    /// `api`, `console` or `metrics`: in logs and in the connection metrics' `listener` label.
    pub name: &'static str,
    pub tcp: TcpListener,
    /// HTTPS when set: each connection's TLS handshake comes first.
    pub tls: Option<TlsAcceptor>,
    pub limits: Limits,
}

/// What every connection of one listener shares.
struct Shared {
    name: &'static str,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    http: auto::Builder<TokioExecutor>,
}

/// Serves `router` on `listener` until `stop` turns true, then stops accepting, lets each
/// connection finish the requests it has in flight, and returns once all are closed.
pub async fn serve(listener: Listener, router: Router, mut stop: watch::Receiver<bool>) {
    let Listener {
        name,
        tcp,
        tls,
        limits,
    } = listener;
    let mut http = auto::Builder::new(TokioExecutor::new());
    // Each connection's deadline below covers the request head; hyper's own header timeout
    // would also run while a connection is idle, closing it at the wrong time.
    http.http1().header_read_timeout(None);
    let shared = Arc::new(Shared {
        name,
        router,
        tls,
        limits,
        http,
    });
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    metrics::gauge!("giftd_connections_max", "listener" => name).set(limits.max_connections as f64);
    let mut refusals = Refusals::default();
    let mut backoff: Option<Duration> = None;
    loop {
        let accepted = tokio::select! {
            accepted = tcp.accept() => accepted,
            () = stopped(&mut stop) => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                if backoff.take().is_some() {
                    tracing::info!(listener = name, "accepting connections again");
                }
                match Arc::clone(&permits).try_acquire_owned() {
                    Ok(permit) => {
                        tokio::spawn(connection(
                            stream,
                            peer,
                            Arc::clone(&shared),
                            stop.clone(),
                            permit,
                        ));
                    }
                    // Closed at once: a client told "no" now can go elsewhere, one left queued
                    // would wait with its own clock running.
                    Err(_) => refusals.refuse(name, limits.max_connections),
                }
            }
            // The client's own trouble (it reset before we accepted): nothing to wait for.
            Err(error) if is_connection_error(&error) => {}
            Err(error) => {
                let pause = next_backoff(backoff);
                if backoff.is_none() {
                    tracing::error!(
                        listener = name,
                        %error,
                        "cannot accept connections; retrying with pauses up to {ACCEPT_BACKOFF_MAX:?} \
                         (logged once until accepting works again)"
                    );
                }
                backoff = Some(pause);
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stopped(&mut stop) => break,
                }
            }
        }
    }
    drop(tcp);
    // Each connection holds a permit until it is closed: all of them back means all closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // A dropped sender also means stop.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Errors of one connection that `accept` reports, after which the next accept may well work.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// The pause after one more accept error, given the last pause.
fn next_backoff(last: Option<Duration>) -> Duration {
    match last {
        None => ACCEPT_BACKOFF_FIRST,
        Some(last) => (last * 2).min(ACCEPT_BACKOFF_MAX),
    }
}

/// Connections closed at once because the limit was reached, and when that was last said.
#[derive(Default)]
struct Refusals {
    since_warning: u64,
    warned_at: Option<Instant>,
}

impl Refusals {
    fn refuse(&mut self, listener: &'static str, max_connections: usize) {
        metrics::counter!("giftd_connections_refused_total", "listener" => listener).increment(1);
        self.since_warning += 1;
        if self
            .warned_at
            .is_none_or(|at| at.elapsed() >= REFUSAL_WARNING_INTERVAL)
        {
            tracing::warn!(
                listener,
                max_connections,
                refused = self.since_warning,
                "connection limit reached: new connections are closed at once (limits.max_connections)"
            );
            self.warned_at = Some(Instant::now());
            self.since_warning = 0;
        }
    }
}

/// Why a connection was closed by giftd rather than by its client.
#[derive(Debug, Clone, Copy)]
enum Timeout {
    /// The TLS handshake did not end within the header-read timeout.
    Handshake,
    /// A request head did not arrive whole within the header-read timeout.
    HeaderRead,
    /// No next request began within the idle timeout.
    Idle,
}

impl Timeout {
    const fn label(self) -> &'static str {
        match self {
            Self::Handshake => "handshake",
            Self::HeaderRead => "header_read",
            Self::Idle => "idle",
        }
    }
}

/// One accepted connection, from the TLS handshake (for HTTPS) to its close.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let open = metrics::gauge!("giftd_connections_open", "listener" => shared.name);
    open.increment(1.0);
    let activity = Arc::new(Activity::new(Instant::now()));
    let stream = Observed {
        inner: stream,
        activity: Arc::clone(&activity),
    };
    let ended = match &shared.tls {
        None => serve_http(stream, peer, &shared, &activity, &mut stop).await,
        Some(acceptor) => {
            let deadline = activity.accepted + shared.limits.header_read_timeout;
            tokio::select! {
                handshake = tokio::time::timeout_at(deadline, acceptor.accept(stream)) => match handshake {
                    Ok(Ok(stream)) => serve_http(stream, peer, &shared, &activity, &mut stop).await,
                    Ok(Err(error)) => {
                        tracing::debug!(listener = shared.name, %peer, %error, "TLS handshake failed");
                        None
                    }
                    Err(_) => Some(Timeout::Handshake),
                },
                () = stopped(&mut stop) => None,
            }
        }
    };
    if let Some(timeout) = ended {
        tracing::debug!(listener = shared.name, %peer, reason = timeout.label(), "connection timed out");
        metrics::counter!(
            "giftd_connections_timed_out_total",
            "listener" => shared.name,
            "reason" => timeout.label()
        )
        .increment(1);
    }
    open.decrement(1.0);
}

/// Serves HTTP on `io` until the client closes it, a timeout closes it, or `stop` turns true
/// and the requests in flight are answered. Returns the timeout when one closed it.
async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    shared: &Shared,
    activity: &Arc<Activity>,
    stop: &mut watch::Receiver<bool>,
) -> Option<Timeout>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router = shared.router.clone();
    let requests = Arc::clone(activity);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        // Rate limits key on the peer's address (crates/api/src/guard.rs).
        request.extensions_mut().insert(ConnectInfo(peer));
        let in_flight = requests.request_started();
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await;
            drop(in_flight);
            response
        }
    });
    let connection = shared.http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        let deadline = activity.deadline(&shared.limits);
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(listener = shared.name, %peer, %error, "connection ended with an error");
                }
                return None;
            }
            () = stopped(stop), if !stopping => {
                // Answers what is in flight, then closes; an idle connection closes at once.
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            () = activity.changed.notified() => {}
            () = sleep_until(deadline.map(|(at, _)| at)) => {
                // Dropping the connection closes it: nothing is in flight to lose.
                if let Some((at, timeout)) = activity.deadline(&shared.limits)
                    && at <= Instant::now()
                {
                    return Some(timeout);
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What a connection is doing, as far as its deadline is concerned: written by the requests
/// it serves and by its reads, read by its deadline.
struct Activity {
    accepted: Instant,
    state: Mutex<ActivityState>,
    /// Told when the deadline may have moved.
    changed: Notify,
}

struct ActivityState {
    requests_in_flight: usize,
    /// Whether a request has been answered; before that, the header-read timeout runs from the
    /// accept, so a client that sends nothing at all gets no more than that.
    answered: bool,
    /// Since when no request has been in flight.
    idle_since: Instant,
    /// The first byte received since then: the next request's head is on its way.
    head_started: Option<Instant>,
}

impl Activity {
    fn new(accepted: Instant) -> Self {
        Self {
            accepted,
            state: Mutex::new(ActivityState {
                requests_in_flight: 0,
                answered: false,
                idle_since: accepted,
                head_started: None,
            }),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        // The state is a few counters, whole after any panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the connection is to be closed, and why; `None` while a request is in flight
    /// (the request timeout bounds it).
    fn deadline(&self, limits: &Limits) -> Option<(Instant, Timeout)> {
        let state = self.state();
        if state.requests_in_flight > 0 {
            None
        } else if !state.answered {
            Some((self.accepted + limits.header_read_timeout, Timeout::HeaderRead))
        } else if let Some(started) = state.head_started {
            Some((started + limits.header_read_timeout, Timeout::HeaderRead))
        } else {
            Some((state.idle_since + limits.idle_timeout, Timeout::Idle))
        }
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.state().requests_in_flight += 1;
        InFlight(Arc::clone(self))
    }

    fn bytes_received(&self) {
        let mut state = self.state();
        if state.requests_in_flight == 0 && state.answered && state.head_started.is_none() {
            state.head_started = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }
}

/// A request being handled; its end starts the idle time when it was the last one.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.requests_in_flight -= 1;
        if state.requests_in_flight == 0 {
            state.answered = true;
            state.idle_since = Instant::now();
            state.head_started = None;
        }
        drop(state);
        self.0.changed.notify_one();
    }
}

/// A connection's socket that tells its [`Activity`] when bytes arrive.
struct Observed<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Observed<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_received();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Observed<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQLITE_FILES: u64 = 15;

    #[test]
    fn the_default_limit_is_what_the_open_file_limit_leaves_at_most_ten_thousand() {
        assert_eq!(
            max_connections(None, SQLITE_FILES, Some(1024)).unwrap(),
            1024 - 64 - 15
        );
        assert_eq!(
            max_connections(None, SQLITE_FILES, Some(1 << 20)).unwrap(),
            10_000
        );
        assert_eq!(max_connections(None, SQLITE_FILES, None).unwrap(), 10_000);
    }

    #[test]
    fn a_configured_limit_is_kept_when_it_fits_and_refused_when_it_does_not() {
        assert_eq!(max_connections(Some(500), SQLITE_FILES, Some(1024)).unwrap(), 500);
        assert_eq!(max_connections(Some(50_000), SQLITE_FILES, None).unwrap(), 50_000);
        let error = max_connections(Some(1000), SQLITE_FILES, Some(1024)).expect_err("refused");
        let message = error.to_string();
        assert!(
            message.contains("limits.max_connections = 1000") && message.contains("room for 945"),
            "{message}"
        );
    }

    #[test]
    fn an_open_file_limit_below_the_reserve_is_refused_when_no_limit_is_configured() {
        let error = max_connections(None, SQLITE_FILES, Some(70)).expect_err("refused");
        assert!(error.to_string().contains("open-file limit of 70"), "{error}");
    }

    #[test]
    fn accept_errors_back_off_from_a_tenth_of_a_second_doubling_to_one_second() {
        let mut pauses = Vec::new();
        let mut last = None;
        for _ in 0..6 {
            let pause = next_backoff(last);
            pauses.push(pause.as_millis());
            last = Some(pause);
        }
        assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn a_connection_waits_for_its_first_head_from_the_accept_then_idles_then_reads_the_next_head() {
        let limits = Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_connections: 1,
        };
        let accepted = Instant::now();
        let activity = Arc::new(Activity::new(accepted));
        let (at, timeout) = activity.deadline(&limits).expect("a deadline");
        assert!(matches!(timeout, Timeout::HeaderRead));
        assert_eq!(at, accepted + limits.header_read_timeout);
        // Bytes before the first request do not push the first head's deadline back.
        activity.bytes_received();
        assert_eq!(activity.deadline(&limits).map(|(at, _)| at), Some(at));

        let in_flight = activity.request_started();
        assert!(
            activity.deadline(&limits).is_none(),
            "a request in flight has no deadline"
        );
        drop(in_flight);
        let (at, timeout) = activity.deadline(&limits).expect("a deadline");
        assert!(matches!(timeout, Timeout::Idle));
        assert!(at >= accepted + limits.idle_timeout);

        activity.bytes_received();
        let (at, timeout) = activity.deadline(&limits).expect("a deadline");
        assert!(matches!(timeout, Timeout::HeaderRead));
        assert!(
            at < accepted + limits.idle_timeout,
            "the next head gets the header-read timeout"
        );
    }
}
