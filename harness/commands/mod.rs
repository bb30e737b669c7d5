pub mod compare;
mod compare_many;
pub mod etcd;
pub mod junit;
pub mod lab;
pub mod local_run;
pub mod probe;
pub mod qualify;
pub mod report;
