//! `vdsctl`: the command-line client of the vds management API (INTERFACE.md, "CLI").

mod cli;
mod client;
mod commands;
mod error;
mod events;
mod import;
mod render;
mod resolve;
mod size;
mod token;

use clap::Parser;

fn main() {
    // clap prints its own usage errors and exits with 2 (0 for --help/--version).
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let env_token = std::env::var("VDS_TOKEN").ok();
    let env_dir = std::env::var_os("VDS_DATA_DIR").map(std::path::PathBuf::from);
    let token = match token::find(
        cli.token.as_deref(),
        env_token.as_deref(),
        env_dir.as_deref(),
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(e.exit_code());
        }
    };
    let ctx = commands::Ctx {
        client: client::Client::new(&cli.api, token),
        json: cli.json,
        no_wait: cli.no_wait,
    };
    match ctx.run(cli.noun) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(e.exit_code());
        }
    }
}
