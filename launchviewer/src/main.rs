//! `launchviewer`: parses the arguments, runs [`launchviewer::run`], prints its one line.

use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use launchviewer::outcome::{Format, Outcome, EXIT_ERROR};
use launchviewer::Args;

fn main() -> ExitCode {
    // Decided before parsing, so that even a usage error answers in the requested form.
    let format = Format::json_if(std::env::args_os().any(|a| a == "--json"));
    // The caller parses stdout: a bug must still end as one ERROR line, never a backtrace.
    std::panic::set_hook(Box::new(move |info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let out = Outcome::error(format!("internal error (a bug in launchviewer): {what}"));
        println!("{}", out.render(format));
        std::process::exit(i32::from(EXIT_ERROR));
    }));
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => e.exit(),
        Err(e) => {
            // clap's own text (with the usage) goes to stderr for the person; the first
            // line, without its "error: " prefix, is the one stdout line.
            let _ = e.print();
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            return finish(&Outcome::usage(first.trim_start_matches("error: ")), format);
        }
    };
    let format = Format::json_if(args.json);
    finish(&launchviewer::run(args), format)
}

fn finish(out: &Outcome, format: Format) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", out.render(format));
    let _ = stdout.flush();
    ExitCode::from(out.exit_code())
}
