//! The listener: HTTP/1.1 connections accepted up to a cap, each served by hyper and closed when
//! its client is slow to send a request head or leaves it idle.
//!
//! - **Header read timeout**: from the accept, or from the first byte of a later request, the
//!   request head must be complete within it (a client that sends part of its headers, or
//!   nothing at all, is cut off).
//! - **Idle timeout**: a keep-alive connection with no request in flight (its last answer sent
//!   or being read by the client) is closed after it.
//! - **Connection cap**: beyond `max_connections` open connections, new ones wait in the
//!   kernel's listen backlog until one closes.
//!
//! Over TLS (`--tls-cert`), the handshake is part of the first request head: it must be done,
//! and the head read, within the header read timeout from the accept (a client that opens a
//! connection and sends nothing, or half a ClientHello, is cut off the same way).
//!
//! A request in flight is bounded by the request deadline instead (`REQUEST_TIMEOUT`, body
//! upload included). `axum::serve` has none of these (hyper's own header timer is not even
//! enabled there), so slow connections stayed open for good.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

/// How long clients may take, and how many may be connected at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Longest wait for a complete request head, from the accept or from its first byte.
    pub header_read_timeout: Duration,
    /// Longest wait for the next request on a connection with none in flight.
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: u32,
}

/// How clients reach the server: over TLS served here, or through a TLS-terminating proxy.
#[derive(Debug, Clone, Default)]
pub(crate) struct Transport {
    /// TLS served by this listener (`--tls-cert`, `--tls-key`).
    pub tls: Option<Arc<super::tls::Tls>>,
    /// The operator says clients reach the server over HTTPS through a proxy
    /// (`--behind-tls-proxy`).
    pub behind_tls_proxy: bool,
}

/// A request extension: the client reached the server over TLS (here or at a proxy the operator
/// declared), so cookies are marked `Secure`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SecureTransport;

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then stops accepting,
/// lets every connection finish its request in flight, and returns once all are closed.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    transport: Transport,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let (stop, stopping) = watch::channel(false);
    let service = hyper_util::service::TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are written whole: no reason to hold their last segment back.
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            service.clone(),
            limits,
            transport.clone(),
            stopping.clone(),
            slot,
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a slot until it is closed.
    let _ = slots.acquire_many(limits.max_connections).await;
}

/// An accept that failed (e.g. out of file descriptors): logged, and retried after a pause so a
/// persistent error does not spin.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// No instant recorded.
const NONE: u64 = u64::MAX;

/// What a connection is doing, shared by its reader, its service and its watcher. Instants are
/// milliseconds since `opened`.
struct Activity {
    opened: Instant,
    /// Requests handed to the service and not answered yet.
    in_flight: AtomicUsize,
    /// When the first byte of a request head came with nothing in flight ([`NONE`]: none
    /// since the last answer). The accept counts as one: a client must speak first.
    head_since: AtomicU64,
    /// When the last answer was handed to hyper.
    idle_since: AtomicU64,
    /// Wakes the watcher after a change of state.
    changed: Notify,
}

/// Why a connection was closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    /// The request head took too long.
    HeaderRead,
    /// No request for too long.
    Idle,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            head_since: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Acquire) == NONE
        {
            self.head_since.store(self.now(), Ordering::Release);
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Release);
        self.changed.notify_one();
    }

    fn request_done(&self) {
        self.idle_since.store(self.now(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    /// When the connection expires if nothing changes, and why; `None` while a request is in
    /// flight.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, Expired)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let at = |ms: u64, limit: Duration| {
            self.opened + Duration::from_millis(ms).saturating_add(limit)
        };
        match self.head_since.load(Ordering::Acquire) {
            NONE => Some((
                at(self.idle_since.load(Ordering::Acquire), limits.idle_timeout),
                Expired::Idle,
            )),
            since => Some((at(since, limits.header_read_timeout), Expired::HeaderRead)),
        }
    }
}

/// Marks a request answered when dropped (answered, failed or abandoned alike).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// The TCP stream, telling its [`Activity`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// One connection, until its client closes it, it expires, or the server stops (its request
/// in flight answered first). `_slot` is its place under the connection cap.
async fn serve_connection(
    stream: TcpStream,
    service: hyper_util::service::TowerToHyperService<Router>,
    limits: Limits,
    transport: Transport,
    mut stopping: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let watched = Watched {
        stream,
        activity: Arc::clone(&activity),
    };
    let secure = transport.tls.is_some() || transport.behind_tls_proxy;
    let Some(tls) = transport.tls else {
        return serve_http(watched, service, limits, activity, stopping, secure, false).await;
    };
    // The handshake counts against the first request head's time (from the accept).
    let deadline = activity.opened + limits.header_read_timeout;
    let handshake = tokio::time::timeout_at(deadline.into(), tls.acceptor().accept(watched));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                metrics::counter!("licensing_http_connections_closed_total", "reason" => "tls_handshake_failed")
                    .increment(1);
                tracing::debug!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                metrics::counter!("licensing_http_connections_closed_total", "reason" => "tls_handshake_timeout")
                    .increment(1);
                tracing::debug!("closing a connection: TLS handshake too slow");
                return;
            }
        },
        _ = stopping.wait_for(|stop| *stop) => return,
    };
    serve_http(stream, service, limits, activity, stopping, secure, true).await;
}

/// HTTP/1.1 on `io` (plain, or TLS served here: `tls`), within `limits` as `activity` tells.
/// Over TLS served here, a request's `X-Forwarded-Proto` is `https` whatever the client sent
/// (this listener is its own TLS terminator: absolute URLs built from it say `https`).
async fn serve_http<I>(
    io: I,
    service: hyper_util::service::TowerToHyperService<Router>,
    limits: Limits,
    activity: Arc<Activity>,
    mut stopping: watch::Receiver<bool>,
    secure: bool,
    tls: bool,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let tracked = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        if secure {
            request.extensions_mut().insert(SecureTransport);
        }
        if tls {
            request.headers_mut().insert(
                "x-forwarded-proto",
                hyper::header::HeaderValue::from_static("https"),
            );
        }
        tracked.request_started();
        let in_flight = InFlight(Arc::clone(&tracked));
        let answer = hyper::service::Service::call(&service, request);
        async move {
            let answer = answer.await;
            drop(in_flight);
            answer
        }
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(conn);
    let mut stop_sent = *stopping.borrow();
    if stop_sent {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let deadline = activity.deadline(&limits);
        let expiry = async {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = activity.changed.notified() => {}
            () = expiry => {
                if let Some((at, why)) = activity.deadline(&limits)
                    && at <= Instant::now()
                {
                    let reason = match why {
                        Expired::HeaderRead => "header_read_timeout",
                        Expired::Idle => "idle_timeout",
                    };
                    metrics::counter!("licensing_http_connections_closed_total", "reason" => reason)
                        .increment(1);
                    tracing::debug!(reason, "closing a connection");
                    return; // dropping the connection closes the socket
                }
            }
            changed = stopping.changed(), if !stop_sent => {
                stop_sent = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
