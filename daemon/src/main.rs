fn main() {
    eprintln!("ballastd: the daemon is being built; see the README for what runs today");
    std::process::exit(1);
}
