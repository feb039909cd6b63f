//! `vruntask`: placeholder until its issue lands.
fn main() {
    eprintln!("vruntask: not implemented yet");
    std::process::exit(2);
}
