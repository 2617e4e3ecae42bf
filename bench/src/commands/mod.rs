pub mod coldstart;
pub mod criterion_rows;
pub mod gateway_load;
