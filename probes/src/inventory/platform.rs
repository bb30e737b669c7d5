//! CPU, memory, hypervisor, container and clock facts.

use std::path::Path;

use serde::Serialize;
use serde_json::json;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use crate::result::ProbeResult;
use crate::system::read_trimmed;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Virtualization {
    /// The cpuinfo `hypervisor` flag: set by every mainstream hypervisor.
    pub hypervisor_flag: bool,
    pub dmi_vendor: Option<String>,
    pub dmi_product: Option<String>,
    /// Best guess at the hypervisor: kvm, xen, vmware, hyperv, firecracker, ...
    pub hypervisor: Option<String>,
}

pub fn collect(result: &mut ProbeResult) {
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = sys
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .filter(|b| !b.is_empty());
    result.fact("cpu_model", model);
    result.fact("cpu_threads", sys.cpus().len() as u64);
    result.fact("cpu_cores", sys.physical_core_count().map(|c| c as u64));
    result.fact("memory_bytes", sys.total_memory());
    result.fact("hostname", System::host_name());
    result.fact("os", System::long_os_version());

    let virt = detect_hypervisor(
        &cpuinfo,
        Path::new("/sys/class/dmi/id"),
        Path::new("/sys/hypervisor/type"),
    );
    let container = detect_container();
    result.fact("virtualization", json!(virt));
    result.fact("container", container.clone());
    if container.is_some() {
        result.warn(
            "running in a container: /proc/stat steal and disk facts are the host kernel's, \
             not this container's",
        );
    }

    let cs_dir = Path::new("/sys/devices/system/clocksource/clocksource0");
    let clocksource = read_trimmed(cs_dir.join("current_clocksource"));
    result.fact("clocksource", clocksource.clone());
    result.fact(
        "available_clocksources",
        read_trimmed(cs_dir.join("available_clocksource")),
    );
    if let Some(cs) = clocksource.as_deref() {
        if ![
            "tsc",
            "kvm-clock",
            "arch_sys_counter",
            "hyperv_clocksource_tsc_page",
        ]
        .contains(&cs)
        {
            result.warn(format!(
                "clocksource is `{cs}`: reading the clock is slow here, which inflates \
                 fine-grained latency measurements"
            ));
        }
    }

    let steal_ticks = steal_ticks_since_boot();
    result.fact("steal_ticks_since_boot", steal_ticks);
    // A guest whose hypervisor exposes a steal clock accrues some steal over
    // any real uptime; zero on a VM usually means no steal clock at all.
    let steal_clock = match (virt.hypervisor_flag, steal_ticks) {
        (_, Some(t)) if t > 0 => "present",
        (true, _) => "not reported",
        (false, _) => "not applicable (bare metal)",
    };
    result.fact("steal_clock", steal_clock);
    if steal_clock == "not reported" {
        result.warn(
            "this VM has accrued no steal time since boot: its hypervisor may not expose a \
             steal clock, so /proc/stat steal cannot be trusted (the steal probe's hiccup \
             detector still measures lost time)",
        );
    }
    result.fact("cgroup_version", cgroup_version());
    // Agents that report the same boot id share one machine's CPUs: the
    // coordinator does not measure their short paths at the same time.
    result.fact(
        "boot_id",
        read_trimmed(Path::new("/proc/sys/kernel/random/boot_id")),
    );
}

/// Identifies the hypervisor from the cpuinfo flag, DMI and /sys/hypervisor.
pub fn detect_hypervisor(cpuinfo: &str, dmi_dir: &Path, sys_hypervisor: &Path) -> Virtualization {
    let hypervisor_flag = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "hypervisor"));
    let dmi_vendor = read_trimmed(dmi_dir.join("sys_vendor"));
    let dmi_product = read_trimmed(dmi_dir.join("product_name"));
    let haystack = format!(
        "{} {} {}",
        dmi_vendor.as_deref().unwrap_or(""),
        dmi_product.as_deref().unwrap_or(""),
        read_trimmed(sys_hypervisor).unwrap_or_default()
    )
    .to_ascii_lowercase();
    let known = [
        ("firecracker", "firecracker"),
        ("kvm", "kvm"),
        ("qemu", "kvm"),
        ("amazon ec2", "kvm"),
        ("google compute", "kvm"),
        ("openstack", "kvm"),
        ("hetzner", "kvm"),
        ("digitalocean", "kvm"),
        ("vmware", "vmware"),
        ("microsoft", "hyperv"),
        ("xen", "xen"),
        ("virtualbox", "virtualbox"),
        ("innotek", "virtualbox"),
        ("parallels", "parallels"),
    ];
    let mut hypervisor = known
        .iter()
        .find(|(needle, _)| haystack.contains(needle))
        .map(|(_, name)| name.to_string());
    if hypervisor.is_none() && hypervisor_flag {
        hypervisor = Some(if dmi_vendor.is_none() {
            // No DMI table at all is typical of microVMs (Firecracker, cloud-hypervisor).
            "unknown (no DMI: likely a microVM)".to_string()
        } else {
            "unknown".to_string()
        });
    }
    Virtualization {
        hypervisor_flag,
        dmi_vendor,
        dmi_product,
        hypervisor,
    }
}

/// What this process can see of a container runtime.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerMarkers {
    pub dockerenv: bool,
    pub containerenv: bool,
    pub kubernetes_env: bool,
    /// `container=` in PID 1's environment (systemd's convention).
    pub pid1_container_env: Option<String>,
    pub pid1_cgroup: String,
    pub root_fs_type: String,
}

impl ContainerMarkers {
    pub fn read() -> Self {
        let pid1_container_env = std::fs::read("/proc/1/environ").ok().and_then(|environ| {
            environ.split(|b| *b == 0).find_map(|var| {
                var.strip_prefix(b"container=")
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
        });
        ContainerMarkers {
            dockerenv: Path::new("/.dockerenv").exists(),
            containerenv: Path::new("/run/.containerenv").exists(),
            kubernetes_env: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
            pid1_container_env,
            pid1_cgroup: std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default(),
            root_fs_type: crate::system::mounts::mount_of(Path::new("/"))
                .map(|m| m.fs_type)
                .unwrap_or_default(),
        }
    }
}

/// Container runtime (docker, podman, kubernetes, lxc, ...) or None.
/// `/.dockerenv` alone is weak evidence: images built with docker keep it
/// when booted as VMs, so it counts only with an overlay root filesystem.
pub fn classify_container(m: &ContainerMarkers) -> Option<String> {
    if let Some(kind) = &m.pid1_container_env {
        return Some(kind.clone());
    }
    if m.containerenv {
        return Some("podman".into());
    }
    if let Some(kind) = ["kubepods", "docker", "lxc", "containerd"]
        .iter()
        .find(|k| m.pid1_cgroup.contains(*k))
    {
        return Some(kind.to_string());
    }
    if m.kubernetes_env {
        return Some("kubernetes".into());
    }
    let layered_root = ["overlay", "aufs", "fuse-overlayfs"].contains(&m.root_fs_type.as_str());
    if m.dockerenv && layered_root {
        return Some("docker".into());
    }
    None
}

pub fn detect_container() -> Option<String> {
    classify_container(&ContainerMarkers::read())
}

fn steal_ticks_since_boot() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().find(|l| l.starts_with("cpu "))?;
    cpu.split_whitespace().nth(8)?.parse().ok()
}

fn cgroup_version() -> &'static str {
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let v1 = Path::new("/sys/fs/cgroup/cpu").exists();
    match (unified, v1) {
        (true, _) => "v2",
        (false, true) => "v1",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dmi_names_the_hypervisor() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sys_vendor"), "QEMU\n").unwrap();
        std::fs::write(
            dir.path().join("product_name"),
            "Standard PC (Q35 + ICH9, 2009)\n",
        )
        .unwrap();
        let v = detect_hypervisor(
            "flags\t: fpu hypervisor sse",
            dir.path(),
            Path::new("/nonexistent"),
        );
        assert!(v.hypervisor_flag);
        assert_eq!(v.hypervisor.as_deref(), Some("kvm"));
        assert_eq!(v.dmi_vendor.as_deref(), Some("QEMU"));
    }

    #[test]
    fn dockerenv_alone_on_a_block_device_root_is_not_a_container() {
        let vm = ContainerMarkers {
            dockerenv: true,
            pid1_cgroup: "0::/\n".into(),
            root_fs_type: "ext4".into(),
            ..Default::default()
        };
        assert_eq!(classify_container(&vm), None);
        let docker = ContainerMarkers {
            root_fs_type: "overlay".into(),
            ..vm.clone()
        };
        assert_eq!(classify_container(&docker).as_deref(), Some("docker"));
        let pod = ContainerMarkers {
            pid1_cgroup: "0::/kubepods/besteffort/pod1234\n".into(),
            ..vm
        };
        assert_eq!(classify_container(&pod).as_deref(), Some("kubepods"));
    }

    #[test]
    fn bare_metal_has_no_hypervisor() {
        let v = detect_hypervisor(
            "flags\t: fpu sse",
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
        );
        assert!(!v.hypervisor_flag);
        assert_eq!(v.hypervisor, None);
    }

    #[test]
    fn microvm_without_dmi_is_named_as_such() {
        let v = detect_hypervisor(
            "flags : hypervisor",
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
        );
        assert!(v.hypervisor.unwrap().contains("microVM"));
    }
}
