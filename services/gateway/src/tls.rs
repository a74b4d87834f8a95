//! The gateway's listener: plaintext HTTP/2 (development) or TLS with rustls,
//! optionally verifying client certificates against a configured CA. Each
//! accepted connection carries a [`ConnInfo`] into the requests' extensions,
//! with the verified client certificate when there is one.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use crate::extras::TlsSettings;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the connection of a request proved.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// The caller's address.
    pub(crate) remote: Option<SocketAddr>,
    /// The client certificate, verified against the client CA.
    pub(crate) client_cert: Option<Arc<CertificateDer<'static>>>,
}

/// An accepted connection, plaintext or TLS.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        match self {
            Conn::Plain(stream) => ConnInfo {
                remote: stream.peer_addr().ok(),
                client_cert: None,
            },
            Conn::Tls(stream) => {
                let (tcp, session) = stream.get_ref();
                ConnInfo {
                    remote: tcp.peer_addr().ok(),
                    client_cert: session
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|cert| Arc::new(cert.clone().into_owned())),
                }
            }
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The rustls server configuration for `settings`.
pub(crate) fn server_config(settings: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = CertificateDer::pem_slice_iter(&settings.cert_chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the TLS certificate chain is not PEM: {e}"))?;
    if chain.is_empty() {
        return Err("the TLS certificate file holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&settings.key_pem)
        .map_err(|e| format!("the TLS private key is not a PEM private key: {e}"))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &settings.client_ca_pem {
        None => {
            if settings.require_client_cert {
                return Err("require_client_cert needs a client CA".into());
            }
            builder.with_no_client_auth()
        }
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("the client CA file is not PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("a client CA certificate is invalid: {e}"))?;
            }
            if roots.is_empty() {
                return Err("the client CA file holds no certificate".into());
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = if settings.require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("the TLS certificate and key do not fit: {e}"))?;
    // HTTP/2 for gRPC, HTTP/1.1 for gRPC-Web from browsers that need it.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts connections on `listener` until `stop` and deals them out to
/// the serving threads in turn. gRPC connections are long-lived, so dealing
/// them out evenly spreads calls evenly; with the listener shared, whichever
/// thread woke first would take each one, and the busier thread bounds the
/// gateway (BENCHMARKS.md, round 9).
pub(crate) async fn deal(
    listener: TcpListener,
    workers: Vec<mpsc::Sender<std::net::TcpStream>>,
    stop: CancellationToken,
) {
    for turn in 0.. {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: do not spin.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "handing over a connection failed");
                continue;
            }
        };
        let worker = &workers[turn % workers.len()];
        if worker.send(stream).await.is_err() {
            // That thread has stopped: the others drain too.
            return;
        }
    }
}

/// The connections dealt to one serving thread, registered with its runtime,
/// completing TLS handshakes concurrently; a failed handshake is logged and
/// dropped. Ends when the dealer stops.
pub(crate) fn incoming(
    mut dealt: mpsc::Receiver<std::net::TcpStream>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> ReceiverStream<io::Result<Conn>> {
    let (sender, receiver) = mpsc::channel(64);
    let acceptor = tls.map(TlsAcceptor::from);
    tokio::spawn(async move {
        while let Some(stream) = dealt.recv().await {
            let stream = match TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, "taking over a connection failed");
                    continue;
                }
            };
            match &acceptor {
                None => {
                    if sender.send(Ok(Conn::Plain(stream))).await.is_err() {
                        return;
                    }
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let sender = sender.clone();
                    let remote = stream.peer_addr().ok();
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                        {
                            Ok(Ok(tls)) => {
                                let _ = sender.send(Ok(Conn::Tls(Box::new(tls)))).await;
                            }
                            Ok(Err(error)) => {
                                tracing::info!(?remote, %error, "TLS handshake refused");
                            }
                            Err(_) => tracing::info!(?remote, "TLS handshake timed out"),
                        }
                    });
                }
            }
        }
    });
    ReceiverStream::new(receiver)
}
