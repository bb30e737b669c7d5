pub mod compare;
pub mod etcd;
pub mod lab;
pub mod probe;
pub mod qualify;
pub mod report;
