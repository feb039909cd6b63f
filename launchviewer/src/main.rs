//! `launchviewer`: placeholder until its issue lands.
fn main() {
    eprintln!("launchviewer: not implemented yet");
    std::process::exit(2);
}
