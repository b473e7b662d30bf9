//! The command line of a service binary. Its settings come from the environment, so it takes no
//! arguments; `--help` and `--version` answer and exit instead of starting a server, and anything
//! else is refused rather than ignored.

use std::ffi::OsString;

/// What a service is, for its `--help`.
pub struct About {
    /// The binary's name, e.g. `baton-http-worker`.
    pub binary: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// The variables a first deployment usually sets, with their defaults.
    pub settings: &'static [(&'static str, &'static str)],
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// No argument: start the service.
    Serve,
    /// Print this text on stdout and exit 0.
    Print(String),
    /// Print this text on stderr and exit 2.
    Refuse(String),
}

impl About {
    /// Reads `args` (without the program name).
    pub fn invocation(&self, args: impl IntoIterator<Item = OsString>) -> Invocation {
        let mut args = args.into_iter();
        let Some(first) = args.next() else {
            return Invocation::Serve;
        };
        match first.to_str() {
            Some("-h" | "--help" | "help") => Invocation::Print(self.help()),
            Some("-V" | "--version") => {
                Invocation::Print(format!("{} {}\n", self.binary, crate::VERSION))
            }
            _ => Invocation::Refuse(format!(
                "{}: unexpected argument {:?}: it takes none, its settings are environment \
                 variables (`{} --help` lists the main ones)\n",
                self.binary,
                first.to_string_lossy(),
                self.binary
            )),
        }
    }

    fn help(&self) -> String {
        let mut text = format!(
            "{} {}: {}\n\nUsage: {}\n\nIt takes no arguments: it is configured by environment \
             variables, among them (default in brackets):\n",
            self.binary,
            crate::VERSION,
            self.summary,
            self.binary
        );
        let width = self
            .settings
            .iter()
            .map(|(k, _)| k.len())
            .max()
            .unwrap_or(0);
        for (variable, default) in self.settings {
            text.push_str(&format!("  {variable:<width$}  [{default}]\n"));
        }
        text.push_str(
            "\nEvery setting is in README.md (\"Configuration\"). SIGTERM or SIGINT stops it \
             gracefully.\n\nOptions:\n  -h, --help     print this and exit\n  -V, --version  \
             print the version and exit\n",
        );
        text
    }

    /// Answers `--help` and `--version` and refuses other arguments, exiting the process; returns
    /// when the service should start.
    pub fn handle_command_line(&self) {
        match self.invocation(std::env::args_os().skip(1)) {
            Invocation::Serve => {}
            Invocation::Print(text) => {
                print!("{text}");
                std::process::exit(0);
            }
            Invocation::Refuse(text) => {
                eprint!("{text}");
                std::process::exit(2);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABOUT: About = About {
        binary: "baton-thing",
        summary: "does a thing.",
        settings: &[
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("GRPC_PORT", "8009"),
        ],
    };

    fn call(args: &[&str]) -> Invocation {
        ABOUT.invocation(args.iter().map(OsString::from))
    }

    #[test]
    fn no_argument_serves() {
        assert_eq!(call(&[]), Invocation::Serve);
    }

    #[test]
    fn help_lists_the_settings_and_the_options() {
        for flag in ["-h", "--help", "help"] {
            let Invocation::Print(text) = call(&[flag]) else {
                panic!("{flag} must print");
            };
            assert!(text.starts_with("baton-thing "), "{text}");
            assert!(text.contains("does a thing."), "{text}");
            assert!(
                text.contains("  REDIS_URL  [redis://127.0.0.1:6379]\n"),
                "{text}"
            );
            assert!(text.contains("  GRPC_PORT  [8009]\n"), "{text}");
            assert!(text.contains("--version"), "{text}");
        }
    }

    #[test]
    fn version_prints_the_build_version() {
        assert_eq!(
            call(&["--version"]),
            Invocation::Print(format!("baton-thing {}\n", crate::VERSION))
        );
        assert_eq!(call(&["-V"]), call(&["--version"]));
    }

    #[test]
    fn anything_else_is_refused_naming_it() {
        let Invocation::Refuse(text) = call(&["--port", "8000"]) else {
            panic!("must refuse");
        };
        assert!(text.contains("\"--port\""), "{text}");
        assert!(text.contains("environment"), "{text}");
        assert!(text.contains("baton-thing --help"), "{text}");
    }
}
