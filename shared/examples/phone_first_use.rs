//! How long the first recipient check takes in a fresh process (the numbering plan is a table
//! compiled in by build.rs: nothing to decode), and what every later check costs. The README quotes:
//!
//! ```sh
//! cargo run --release -p byosms --example phone_first_use
//! ```

use byosms::domain::phone::check_recipient;
use std::time::Instant;

fn main() {
    let started = Instant::now();
    check_recipient("+14155550100").expect("a valid US number");
    let first = started.elapsed();

    let numbers = [
        "+447700900123",
        "+819012345678",
        "+4915123456789",
        "+61491570156",
    ];
    let rounds = 10_000;
    let started = Instant::now();
    for i in 0..rounds {
        let _ = check_recipient(numbers[i % numbers.len()]);
    }
    let each = started.elapsed() / rounds as u32;
    println!("first check in this process: {first:?}");
    println!("each later check: {each:?}");
}
