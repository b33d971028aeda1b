//! `switchboard-localstack-lambda-host`: one Lambda execution environment for LocalStack (see the library).
//!
//! - `switchboard-localstack-lambda-host serve --function NAME --runtime-id ID`: the host, started by the
//!   LocalStack plugin; configuration as one JSON line on stdin. The arguments only name the
//!   environment in process listings.
//! - `switchboard-localstack-lambda-host sandbox-init --socket PATH --port N -- BOOTSTRAP...`: the
//!   forwarder, run by the host inside the sandbox.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Runs Lambda functions for LocalStack in a bubblewrap sandbox"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve one execution environment (configuration: one JSON line on stdin).
    Serve {
        /// The function's name (shown in process listings).
        #[arg(long)]
        function: String,
        /// LocalStack's id of the environment (shown in process listings).
        #[arg(long)]
        runtime_id: String,
    },
    /// Inside the sandbox: forward 127.0.0.1:PORT to the Runtime API socket and run the bootstrap.
    #[command(hide = true)]
    SandboxInit {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        port: u16,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            function,
            runtime_id,
        } => serve(&function, &runtime_id),
        Command::SandboxInit {
            socket,
            port,
            command,
        } => sandbox_init(socket, port, &command),
    }
}

fn serve(function: &str, runtime_id: &str) -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LAMBDA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard-localstack-lambda-host: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(switchboard_localstack_lambda_host::serve(tokio::io::stdin())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(function, runtime_id, "{e}");
            ExitCode::FAILURE
        }
    }
}

fn sandbox_init(socket: PathBuf, port: u16, command: &[String]) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard-localstack-lambda-host: cannot start the async runtime: {e}");
            return ExitCode::from(125);
        }
    };
    match runtime.block_on(switchboard_localstack_lambda_host::forwarder::run(
        socket, port, command,
    )) {
        Ok(status) => ExitCode::from(switchboard_localstack_lambda_host::forwarder::exit_code(
            &status,
        )),
        Err(e) => {
            eprintln!("switchboard-localstack-lambda-host: {e}");
            ExitCode::from(126)
        }
    }
}
