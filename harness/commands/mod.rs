pub mod probe;
pub mod qualify;
pub mod report;
