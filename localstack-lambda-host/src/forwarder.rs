//! The forwarder: the first process of the sandbox (`switchboard-localstack-lambda-host sandbox-init`).
//!
//! The sandbox's network namespace has loopback and nothing else. The forwarder listens on
//! `127.0.0.1:PORT` there (the address in `AWS_LAMBDA_RUNTIME_API`), carries each connection to
//! the host's Runtime API through the Unix socket bound into the sandbox, starts the bootstrap,
//! and exits with the bootstrap's status, which takes the whole sandbox down with it.

use std::path::PathBuf;
use std::process::ExitStatus;

use tokio::net::{TcpListener, TcpStream, UnixStream};

/// Why the forwarder could not run the bootstrap.
#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Listen { port: u16, source: std::io::Error },
    #[error("no bootstrap command given")]
    NoCommand,
    #[error("cannot start {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("cannot wait for {command}: {source}")]
    Wait {
        command: String,
        source: std::io::Error,
    },
}

/// Listens, starts `argv`, forwards until it exits, and answers its exit status.
pub async fn run(
    socket: PathBuf,
    port: u16,
    argv: &[String],
) -> Result<ExitStatus, ForwarderError> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| ForwarderError::Listen { port, source })?;
    let (program, args) = argv.split_first().ok_or(ForwarderError::NoCommand)?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .spawn()
        .map_err(|source| ForwarderError::Spawn {
            command: program.clone(),
            source,
        })?;
    loop {
        tokio::select! {
            status = child.wait() => {
                return status.map_err(|source| ForwarderError::Wait {
                    command: program.clone(),
                    source,
                });
            }
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(forward(stream, socket.clone()));
                }
            }
        }
    }
}

async fn forward(mut tcp: TcpStream, socket: PathBuf) {
    let _ = tcp.set_nodelay(true);
    match UnixStream::connect(&socket).await {
        Ok(mut unix) => {
            let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
        }
        Err(e) => {
            eprintln!(
                "switchboard-localstack-lambda-host: cannot reach the Runtime API at {}: {e}",
                socket.display()
            );
        }
    }
}

/// The exit code that reports `status` to whoever waits for the forwarder.
pub fn exit_code(status: &ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn exit_codes_carry_the_status() {
        assert_eq!(exit_code(&ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(&ExitStatus::from_raw(9)), 137);
    }

    #[tokio::test]
    async fn connections_reach_the_socket_and_the_status_comes_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("api.sock");
        let unix = tokio::net::UnixListener::bind(&socket).expect("bind");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = unix.accept().await {
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).await.is_ok() {
                    let _ = s.write_all(b"pong").await;
                }
            }
        });
        // A free port; the child connects, checks the answer, exits with 7.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let script = format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port} && printf ping >&3 && read -r -n4 a <&3 && \
             [ \"$a\" = pong ] && exit 7"
        );
        let argv = ["bash".to_owned(), "-c".to_owned(), script];
        let status = run(socket, port, &argv).await.expect("runs");
        assert_eq!(status.code(), Some(7));
    }
}
