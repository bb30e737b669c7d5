pub mod compare;
pub mod probe;
pub mod qualify;
pub mod report;
