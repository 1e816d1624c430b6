//! The `dotgate` binary: parse the command line, load the TLS material, run (or run one of the
//! tools: `ticket-keys new`, `pin`, `dnsenc keygen|query|load|publish`, `pvt ...`). Exit status
//! 2 for anything wrong with the settings or a file, a listen address that cannot be bound
//! included (one line on stderr), 1 for a failure while running (a client tool's timeout or
//! error answer included).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use dotgate::config::{Config, Invocation};
use dotgate::tls::{self, TlsSetup};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let invocation = match Config::from_args(std::env::args_os()) {
        Ok(invocation) => invocation,
        Err(e) => return bad_config(&e),
    };
    let (config, check_only) = match invocation {
        Invocation::PrintedHelp => return ExitCode::SUCCESS,
        Invocation::NewTicketKeys { rotate } => return print_or_fail(tls::ticket_keys::new_file(rotate.as_deref())),
        Invocation::Pin { cert } => return print_or_fail(tls::pin_of_cert_file(&cert).map(|pin| pin + "\n")),
        Invocation::DnsencKeygen { scheme, out, priority } => {
            return print_or_fail(dotgate::frontend::dnsenc::tools::keygen(&scheme, &out, priority))
        }
        Invocation::DnsencQuery(request) => return report(dotgate::frontend::dnsenc::tools::query(&request)),
        Invocation::DnsencLoad(request) => return report(dotgate::frontend::dnsenc::load::run(&request)),
        Invocation::DnsencPublish(request) => return report(dotgate::frontend::dnsenc::publish::run(&request)),
        Invocation::Pvt(tool) => return report(dotgate::frontend::pvt::cli::run(tool)),
        Invocation::Check(config) => (config, true),
        Invocation::Run(config) => (config, false),
    };
    let cert_and_key = config.cert_and_key.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    let tls = match TlsSetup::load(cert_and_key, config.ticket_keys.as_deref()) {
        Ok(tls) => tls,
        Err(e) => return bad_config(&e),
    };
    let dnsenc = match &config.dnsenc {
        Some(settings) => match dotgate::frontend::dnsenc::reload::load_server(settings) {
            Ok(server) => Some(std::sync::Arc::new(server)),
            Err(e) => return bad_config(&e),
        },
        None => None,
    };
    let pvt = match &config.pvt {
        Some(settings) => match dotgate::frontend::pvt::tools::load_server(settings) {
            Ok(server) => Some(std::sync::Arc::new(server)),
            Err(e) => return bad_config(&e),
        },
        None => None,
    };
    if check_only {
        println!("dotgate: configuration OK");
        return ExitCode::SUCCESS;
    }

    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DOTGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match dotgate::run(config, tls, dnsenc, pvt) {
        Ok(()) => ExitCode::SUCCESS,
        // An address this host cannot listen on is a settings problem like any other.
        Err(e @ (dotgate::RunError::Listen(_) | dotgate::RunError::Admin { .. })) => bad_config(&e),
        Err(e) => {
            eprintln!("dotgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A tool's output on stdout, or its error as a bad-config line.
fn print_or_fail(output: Result<String, dotgate::config::ConfigError>) -> ExitCode {
    match output {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => bad_config(&e),
    }
}

/// A client tool's report on stdout and its failure, if any, as one line on stderr with exit
/// status 1; bad input as a bad-config line.
fn report(outcome: Result<dotgate::frontend::dnsenc::tools::Report, dotgate::config::ConfigError>) -> ExitCode {
    match outcome {
        Ok(report) => {
            print!("{}", report.text);
            match report.failure {
                Some(line) => {
                    eprintln!("dotgate: {line}");
                    ExitCode::FAILURE
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(e) => bad_config(&e),
    }
}

fn bad_config(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("dotgate: {e}");
    ExitCode::from(2)
}
