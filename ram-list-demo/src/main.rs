//! `ram-list`: see the `ram_list_demo` library for what it does.

fn main() -> std::process::ExitCode {
    ram_list_demo::main()
}
