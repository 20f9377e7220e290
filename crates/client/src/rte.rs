//! The RTE WebSocket from the agent's side.

use deskrec_protocol::{AgentMessage, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

use crate::{ClientError, ServerAddress, tls};

/// An open RTE connection, authenticated with the device credential.
pub struct RteSocket {
    ws: WebSocketStream<TlsStream<TcpStream>>,
}

impl RteSocket {
    /// Connects to `/api/v1/rte` with the device's credential.
    pub async fn connect(addr: &ServerAddress, credential: &str) -> Result<Self, ClientError> {
        let url = format!("wss://{}/api/v1/rte", addr.authority());
        let mut req = url
            .into_client_request()
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let auth = format!("Bearer {credential}")
            .parse()
            .map_err(|_| ClientError::Request("the credential is not a valid header".into()))?;
        req.headers_mut().insert("authorization", auth);
        let stream = tls::connect(addr).await?;
        let (ws, _) = tokio_tungstenite::client_async(req, stream).await?;
        Ok(Self { ws })
    }

    /// Sends one message.
    pub async fn send(&mut self, msg: &AgentMessage) -> Result<(), ClientError> {
        self.ws.send(Message::text(msg.to_json())).await?;
        Ok(())
    }

    /// The next server message; `None` when the server closed the
    /// connection. Pings are answered by the WebSocket layer.
    pub async fn recv(&mut self) -> Result<Option<ServerMessage>, ClientError> {
        loop {
            match self.ws.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Text(t))) => {
                    return ServerMessage::from_json(t.as_str())
                        .map(Some)
                        .map_err(|e| ClientError::Protocol(format!("{e}: {}", t.as_str())));
                }
                Some(Ok(Message::Binary(_))) => {
                    return Err(ClientError::Protocol("a binary frame".into()));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Closes the connection politely.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.ws.close(None).await?;
        Ok(())
    }
}
