pub mod compare;
pub mod lab;
pub mod probe;
pub mod qualify;
pub mod report;
