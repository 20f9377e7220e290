//! The command line. Everything has a default: the installer starts the
//! app with no arguments at every logon.

use std::path::PathBuf;

use clap::Parser;
use deskrec_agent::DataDir;

/// Deskrec: records this PC's screen as the recording server's policy
/// says, and shows what it does from the tray.
#[derive(Parser, Debug, Clone)]
#[command(name = "deskrec-tray", version)]
pub struct Cli {
    /// The agent's data directory (default: the platform's).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Enroll this PC first: the server's URL and an enrollment token
    /// (the compact token the server gives, or its secret with
    /// --fingerprint).
    /// Tokens are base64url: one in 64 starts with `-`, a value here.
    #[arg(long, num_args = 2, value_names = ["URL", "TOKEN"], allow_hyphen_values = true)]
    pub enroll: Option<Vec<String>>,
    /// The server's key pin (`spki-sha256:<hex>`), for --enroll with a
    /// plain secret.
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// The deployment settings file (default: `config/deployment.toml`
    /// in the data directory, where the installer writes it).
    #[arg(long)]
    pub deployment: Option<PathBuf>,
    /// Where the log files go (default: the user's local state directory).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// A fixed session user (default: follow the PC's sessions).
    #[arg(long)]
    pub login: Option<String>,
    /// What to record: this PC's screen, or numbered test pictures.
    #[arg(long, value_enum, default_value_t = Source::Screen)]
    pub source: Source,
    /// Open the status window at start.
    #[arg(long)]
    pub show: bool,
    /// Quit cleanly after this many seconds (tests and benchmarks: the
    /// same path as "Quit Deskrec").
    #[arg(long, hide = true)]
    pub exit_after: Option<u64>,
}

/// The picture source.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Source {
    /// The screen.
    Screen,
    /// Numbered test pictures (640x360), for demos and tests.
    Synthetic,
}

impl Cli {
    /// The data directory to run on.
    pub fn data_dir(&self) -> DataDir {
        DataDir::new(
            self.data_dir
                .clone()
                .unwrap_or_else(|| DataDir::platform_default().root().to_path_buf()),
        )
    }

    /// The log directory.
    pub fn log_dir(&self) -> PathBuf {
        self.log_dir
            .clone()
            .unwrap_or_else(crate::logs::default_dir)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// Tokens are base64url, so one in 64 starts with `-`.
    #[test]
    fn an_enrollment_token_that_starts_with_a_dash_is_a_token() {
        let token = "-dTRcXJEIFNF0NtWXXi4410kiBAEeU9JwLB_ryWrKBg";
        let cli =
            super::Cli::try_parse_from(["deskrec-tray", "--enroll", "https://x", token]).unwrap();
        assert_eq!(cli.enroll.unwrap(), ["https://x", token]);
    }
}
