//! `serve --audit-syslog udp://HOST:PORT` (or `tcp://`): every new entry of both audit chains
//! sent to a syslog collector as an RFC 5424 message whose text is its CEF line
//! ([`super::cef`]). A task of its own tails the chains in the database (every entry, whichever
//! path wrote it), so no request ever waits for the collector: what is not sent yet stays in the
//! database, read at most [`PAGE`] rows a chain per poll. It starts at the chains' heads when the
//! server starts (nothing is sent twice after a restart, and what was written while no replica
//! sent is not sent: export it with `GET /v1/audit/cef`). UDP datagrams are fire and forget;
//! over TCP (RFC 6587 octet counting) a failed send is retried at the next poll. Enable it on
//! one replica: each replica sending sends every entry.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::cef;
use super::db::Db;

/// Rows of each chain read per poll at most.
const PAGE: i64 = 1000;
/// How often the chains are polled.
pub(crate) const POLL: Duration = Duration::from_secs(1);

/// Where the messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyslogTarget {
    /// UDP datagrams, one message each.
    Udp(SocketAddr),
    /// A TCP stream, each message prefixed by its length (RFC 6587 octet counting).
    Tcp(SocketAddr),
}

impl SyslogTarget {
    /// Parses `udp://HOST:PORT` or `tcp://HOST:PORT` (the host resolved now).
    pub(crate) fn parse(text: &str) -> Result<SyslogTarget, String> {
        let bad = || format!("audit_syslog `{text}`: expected udp://HOST:PORT or tcp://HOST:PORT");
        let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
        let addr = std::net::ToSocketAddrs::to_socket_addrs(rest)
            .map_err(|e| format!("audit_syslog `{text}`: {e}"))?
            .next()
            .ok_or_else(bad)?;
        match scheme {
            "udp" => Ok(SyslogTarget::Udp(addr)),
            "tcp" => Ok(SyslogTarget::Tcp(addr)),
            _ => Err(bad()),
        }
    }
}

/// The RFC 5424 message of a CEF line with CEF severity `severity` at `at`: facility 13 (log
/// audit); syslog severity 4 (warning) from CEF 7, 5 (notice) from CEF 5, else 6 (info).
pub(crate) fn message(at: i64, severity: u8, msgid: &str, cef_line: &str) -> String {
    let level = match severity {
        7.. => 4,
        5 | 6 => 5,
        _ => 6,
    };
    let timestamp = time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".to_owned());
    format!(
        "<{}>1 {timestamp} - licensing-server - {msgid} - {cef_line}",
        13 * 8 + level
    )
}

/// Sends messages to the target; a TCP connection is opened on first use and again after a
/// failure.
struct Sender {
    target: SyslogTarget,
    udp: Option<tokio::net::UdpSocket>,
    tcp: Option<tokio::net::TcpStream>,
}

impl Sender {
    async fn send(&mut self, text: &str) -> std::io::Result<()> {
        match self.target {
            SyslogTarget::Udp(addr) => {
                if self.udp.is_none() {
                    let local: SocketAddr = if addr.is_ipv4() {
                        ([0, 0, 0, 0], 0).into()
                    } else {
                        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                    };
                    self.udp = Some(tokio::net::UdpSocket::bind(local).await?);
                }
                if let Some(socket) = &self.udp {
                    socket.send_to(text.as_bytes(), addr).await?;
                }
                Ok(())
            }
            SyslogTarget::Tcp(addr) => {
                if self.tcp.is_none() {
                    let stream = tokio::time::timeout(
                        Duration::from_secs(5),
                        tokio::net::TcpStream::connect(addr),
                    )
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
                    self.tcp = Some(stream);
                }
                let framed = format!("{} {text}", text.len());
                let result = match &mut self.tcp {
                    Some(stream) => stream.write_all(framed.as_bytes()).await,
                    None => Ok(()),
                };
                if result.is_err() {
                    self.tcp = None;
                }
                result
            }
        }
    }
}

/// Starts the task that sends to `target` every entry after `start` (the seqs of the admin and
/// event chains; `None`: the chains' heads now, i.e. every entry appended from now on).
pub(crate) fn spawn_syslog(
    db: Db,
    target: SyslogTarget,
    poll: Duration,
    start: Option<(i64, i64)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut sender = Sender {
            target,
            udp: None,
            tcp: None,
        };
        let (mut admin, mut events) = loop {
            if let Some(start) = start {
                break start;
            }
            match db.audit_heads().await {
                Ok(heads) => break heads,
                Err(error) => {
                    tracing::warn!(%error, "audit syslog: reading the chains' heads");
                    tokio::time::sleep(poll).await;
                }
            }
        };
        let mut ticks = tokio::time::interval(poll);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match db.audit_entries_after(admin, PAGE).await {
                Ok(entries) => {
                    for entry in entries {
                        let line = cef::admin_line(&entry);
                        let text =
                            message(entry.at, cef::admin_severity(&entry.action), "audit", &line);
                        if let Err(error) = sender.send(&text).await {
                            tracing::warn!(%error, "audit syslog: send failed; retrying");
                            break;
                        }
                        admin = entry.seq;
                    }
                }
                Err(error) => tracing::warn!(%error, "audit syslog: reading entries"),
            }
            match db.audit_events_after(events, PAGE).await {
                Ok(rows) => {
                    for event in rows {
                        let line = cef::event_line(&event);
                        let severity = cef::event_severity(&event.action).0;
                        let text = message(event.at, severity, "event", &line);
                        if let Err(error) = sender.send(&text).await {
                            tracing::warn!(%error, "audit syslog: send failed; retrying");
                            break;
                        }
                        events = event.seq;
                    }
                }
                Err(error) => tracing::warn!(%error, "audit syslog: reading events"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_messages_follow_rfc_5424() {
        assert_eq!(
            SyslogTarget::parse("udp://127.0.0.1:514").unwrap(),
            SyslogTarget::Udp(([127, 0, 0, 1], 514).into())
        );
        assert!(matches!(
            SyslogTarget::parse("tcp://127.0.0.1:6514").unwrap(),
            SyslogTarget::Tcp(_)
        ));
        for bad in ["127.0.0.1:514", "http://127.0.0.1:514", "udp://nowhere"] {
            assert!(SyslogTarget::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            message(0, 7, "audit", "CEF:0|x"),
            "<108>1 1970-01-01T00:00:00Z - licensing-server - audit - CEF:0|x"
        );
        assert!(message(0, 3, "event", "CEF").starts_with("<110>1 "));
    }
}
