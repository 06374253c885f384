//! An HTTP/2 device of the tests' own (tokio-rustls trusting only the sim's ca.pem, an h2 client, one
//! connection per device as AVS wants), for driving avs-sim without the runtime.
// Each test crate uses a part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use avs_core::multipart::{boundary_from_content_type, MultipartError, MultipartParser, MultipartWriter, Part};
use avs_sim::{Approval, Sim, SimConfig, SimHandle};
use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use h2::{PingPong, RecvStream};
use http::{HeaderMap, Request, StatusCode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

/// Only bounds a test that would otherwise hang; nothing waits for it to pass.
pub const WAIT: Duration = Duration::from_secs(10);

pub async fn start(change: impl FnOnce(&mut SimConfig)) -> (SimHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
    config.approval = Approval::Manual;
    config.poll_interval = Duration::ZERO;
    change(&mut config);
    (Sim::start(config).await.unwrap(), dir)
}

/// A TLS client configuration whose only trust anchor is the sim's ca.pem.
pub fn trusting_only_the_sim(sim: &SimHandle) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(sim.ca_pem_path()).unwrap()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// One device connection.
pub struct Device {
    pub send: SendRequest<Bytes>,
    /// Drives the connection (dropped with the device) and ends with its outcome.
    driver: JoinSet<Result<(), h2::Error>>,
    /// HTTP/2 PINGs of our own, to see whether the sim acknowledges them.
    pub pings: PingPong,
    /// SETTINGS_MAX_CONCURRENT_STREAMS as the server announced it.
    pub max_streams: usize,
    pub token: String,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The parts of a multipart/related answer, checking that it was closed properly.
    pub fn parts(&self) -> Vec<Part> {
        let boundary = boundary_from_content_type(self.content_type()).expect("a boundary");
        let mut parser = MultipartParser::new(&boundary);
        parser.push(&self.body).unwrap();
        let mut parts = Vec::new();
        while let Some(part) = parser.next_part().unwrap() {
            parts.push(part);
        }
        assert!(parser.is_finished(), "an event answer ends with the close-delimiter");
        parts
    }
}

pub async fn read_all(mut body: RecvStream) -> Bytes {
    let mut all = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        all.extend_from_slice(&chunk);
    }
    all.freeze()
}

impl Device {
    pub async fn connect(sim: &SimHandle) -> Device {
        let tcp = TcpStream::connect(sim.addr()).await.unwrap();
        let tls = TlsConnector::from(trusting_only_the_sim(sim))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("the sim's certificate chains to ca.pem and names localhost");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (send, mut connection) = h2::client::handshake(tls).await.unwrap();
        let pings = connection.ping_pong().expect("taken once");
        let mut connection = Box::pin(connection);
        let mut device = Device { send, driver: JoinSet::new(), pings, max_streams: 0, token: String::new() };
        // The server's SETTINGS precede its first answer: drive the connection until one arrives.
        let ping = device.start("GET", "/ping", &[]).0;
        tokio::select! {
            answer = ping => assert_eq!(answer.unwrap().status(), StatusCode::FORBIDDEN, "no token yet"),
            ended = &mut connection => panic!("connection ended early: {ended:?}"),
        }
        device.max_streams = device.send.current_max_send_streams();
        device.driver.spawn(connection);
        device
    }

    /// How the connection ended (waiting for it to end).
    pub async fn closed(&mut self) -> Result<(), h2::Error> {
        let ended = tokio::time::timeout(WAIT, self.driver.join_next()).await.expect("the connection ends");
        ended.expect("a driver").expect("the driver does not panic")
    }

    pub fn start(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
        let mut request = Request::builder().method(method).uri(format!("https://localhost{path}"));
        if !self.token.is_empty() {
            request = request.header("authorization", format!("Bearer {}", self.token));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send.send_request(request.body(()).unwrap(), false).unwrap()
    }

    pub async fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: Bytes) -> Answer {
        let (response, mut stream) = self.start(method, path, headers);
        stream.send_data(body, true).unwrap();
        let response = tokio::time::timeout(WAIT, response).await.expect("an answer").unwrap();
        let (head, body) = response.into_parts();
        Answer { status: head.status, headers: head.headers, body: read_all(body).await }
    }

    pub async fn form(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        self.request("POST", path, &[("content-type", "application/x-www-form-urlencoded")], Bytes::from(body)).await
    }

    /// Code-based linking, approved through the admin path; keeps the access token, returns the answer.
    pub async fn link(&mut self) -> Value {
        let scope_data = r#"{"alexa:all":{"productID":"p","productInstanceAttributes":{"deviceSerialNumber":"d"}}}"#;
        let codepair =
            [("response_type", "device_code"), ("client_id", "c"), ("scope", "alexa:all"), ("scope_data", scope_data)];
        let pair = self.form("/auth/O2/create/codepair", &codepair).await.json();
        let poll = [
            ("grant_type", "device_code"),
            ("device_code", pair["device_code"].as_str().unwrap()),
            ("user_code", pair["user_code"].as_str().unwrap()),
        ];
        let pending = self.form("/auth/O2/token", &poll).await;
        assert_eq!(
            (pending.status, pending.json()["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("authorization_pending"))
        );
        let approve = format!("/admin/approve?user_code={}", pair["user_code"].as_str().unwrap());
        assert_eq!(self.request("POST", &approve, &[], Bytes::new()).await.status, StatusCode::OK);
        let tokens = self.form("/auth/O2/token", &poll).await;
        assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.json());
        self.token = tokens.json()["access_token"].as_str().unwrap().to_string();
        tokens.json()
    }

    /// Sends an event (metadata, and audio streamed in 10 ms chunks when given).
    pub async fn event(&mut self, metadata: &Value, audio: Option<&[u8]>) -> Answer {
        let w = MultipartWriter::random();
        let (response, mut stream) =
            self.start("POST", "/v20160207/events", &[("content-type", &w.form_data_content_type())]);
        stream
            .send_data(
                w.form_data_part("metadata", "application/json; charset=UTF-8", metadata.to_string().as_bytes()),
                false,
            )
            .unwrap();
        if let Some(audio) = audio {
            stream.send_data(w.form_data_part_head("audio", "application/octet-stream"), false).unwrap();
            for chunk in audio.chunks(320) {
                stream.send_data(Bytes::copy_from_slice(chunk), false).unwrap();
            }
        }
        stream.send_data(w.close(), true).unwrap();
        let response = tokio::time::timeout(WAIT, response).await.expect("an answer").unwrap();
        let (head, body) = response.into_parts();
        Answer { status: head.status, headers: head.headers, body: read_all(body).await }
    }

    pub async fn open_downchannel(&mut self) -> Downchannel {
        let (response, mut stream) = self.start("GET", "/v20160207/directives", &[]);
        stream.send_data(Bytes::new(), true).unwrap();
        let response = tokio::time::timeout(WAIT, response).await.expect("an answer").unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            content_type.starts_with("multipart/related") && content_type.contains("type=\"application/json\""),
            "{content_type}"
        );
        let parser = MultipartParser::new(&boundary_from_content_type(&content_type).unwrap());
        Downchannel { body: response.into_body(), parser }
    }
}

pub struct Downchannel {
    pub body: RecvStream,
    pub parser: MultipartParser,
}

impl Downchannel {
    /// The next complete part, or None once the server ended the stream.
    pub async fn next_part(&mut self) -> Option<Part> {
        self.try_next_part().await.unwrap()
    }

    /// Reads past whatever still comes to how the stream ended: cleanly, or with a reset or broken connection.
    pub async fn end(&mut self) -> Result<(), h2::Error> {
        tokio::time::timeout(WAIT, async {
            while let Some(chunk) = self.body.data().await {
                let _ = self.body.flow_control().release_capacity(chunk?.len());
            }
            Ok(())
        })
        .await
        .expect("the downchannel ends")
    }

    /// The next complete part, None once the server ended the stream, or what the parser found wrong.
    pub async fn try_next_part(&mut self) -> Result<Option<Part>, MultipartError> {
        loop {
            if let Some(part) = self.parser.next_part()? {
                return Ok(Some(part));
            }
            let chunk = tokio::time::timeout(WAIT, self.body.data()).await.expect("downchannel data or its end");
            match chunk {
                Some(Ok(chunk)) => {
                    let _ = self.body.flow_control().release_capacity(chunk.len());
                    self.parser.push(&chunk)?;
                }
                Some(Err(_)) | None => return Ok(None),
            }
        }
    }
}

pub fn event(namespace: &str, name: &str, message_id: &str, payload: Value) -> Value {
    json!({"event": {"header": {"namespace": namespace, "name": name, "messageId": message_id}, "payload": payload}})
}

/// A JSON Schema of the workspace, compiled.
pub fn schema(path: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(format!("{}/../schemas/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}
