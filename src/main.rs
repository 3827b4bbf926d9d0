//! The `k1s` binary: parse the command line, set up logging, run the subcommand.

use k1s::cli::Command;

fn main() -> std::process::ExitCode {
    let cli = match k1s::config::parse(std::env::args_os().collect()) {
        Ok(c) => c,
        Err(k1s::config::ConfigError::Flags(e)) => e.exit(),
        Err(e) => {
            eprintln!("k1s: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // The shim forks and must stay single-threaded: dispatch before any runtime exists.
    if let Command::Shim(args) = &cli.command {
        k1s::sandbox::shim::main(&args.dir);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("k1s: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Server(args) => k1s::server::run(*args).await,
            Command::Shim(_) => unreachable!("dispatched before the runtime starts"),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("k1s: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
