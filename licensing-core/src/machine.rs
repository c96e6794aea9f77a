//! Reading fingerprint components from the operating system (feature `machine`).
//!
//! Linux reads `/proc` and `/sys` directly (a few small files, tens of microseconds; sysinfo's
//! full refresh costs milliseconds). macOS and Windows take the machine id from `machine-uid`
//! (IOPlatformUUID via gethostuuid, and the registry's MachineGuid) and the rest from `sysinfo`
//! with narrow refreshes; never `System::new_all()`.

use std::collections::BTreeMap;

use crate::fingerprint::{ComponentSource, MachineFingerprint, RawComponents, component};

/// Environment variable holding a vendor-supplied fingerprint value for containers and cloud
/// nodes, where hardware identity is meaningless. When set and non-empty it replaces every
/// hardware component (the fingerprint then has the single component `override`).
pub const OVERRIDE_ENV: &str = "LICENSING_FINGERPRINT_OVERRIDE";

/// The running machine, read from the OS once per process: hardware identity does not change
/// while an app runs, and later checks then cost only the hashing (see docs/BENCHMARKS.md).
/// [`SystemComponents::read_uncached`] reads again, for long-running services.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemComponents;

static CACHE: std::sync::OnceLock<RawComponents> = std::sync::OnceLock::new();

impl ComponentSource for SystemComponents {
    fn read(&self) -> RawComponents {
        CACHE.get_or_init(Self::read_uncached).clone()
    }
}

impl SystemComponents {
    /// Reads every component from the OS now, bypassing the per-process cache.
    pub fn read_uncached() -> RawComponents {
        let mut values = BTreeMap::new();
        let mut put = |name: &str, value: Option<String>| {
            if let Some(v) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
                values.insert(name.to_owned(), v);
            }
        };
        put(component::MACHINE_ID, machine_id());
        put(component::HOSTNAME, os::hostname());
        put(component::CPU, os::cpu());
        put(component::MAC, os::macs());
        put(
            component::MEMORY,
            os::memory_gib().map(|g| format!("{g} GiB")),
        );
        put(component::DISK, os::root_disk());
        put(component::OS, Some(std::env::consts::OS.to_owned()));
        RawComponents {
            values,
            virtualization: os::virtualization(),
        }
    }
}

/// The fingerprint of the machine `source` describes, salted with `salt` (the product id or a
/// vendor salt). `override_value`, when non-empty, replaces the hardware components.
pub fn fingerprint_with(
    source: &dyn ComponentSource,
    salt: &str,
    override_value: Option<&str>,
) -> MachineFingerprint {
    let raw = source.read();
    match override_value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(value) => MachineFingerprint::from_override(value, salt, raw.virtualization),
        None => MachineFingerprint::derive(&raw, salt),
    }
}

/// The fingerprint of this machine, honouring [`OVERRIDE_ENV`].
pub fn this_machine(salt: &str) -> MachineFingerprint {
    let override_value = std::env::var(OVERRIDE_ENV).ok();
    fingerprint_with(&SystemComponents, salt, override_value.as_deref())
}

/// Virtual-machine vendor strings as they appear in DMI `sys_vendor` / `product_name`.
const HYPERVISOR_VENDORS: [&str; 10] = [
    "QEMU",
    "KVM",
    "VMware",
    "VirtualBox",
    "innotek",
    "Xen",
    "Microsoft Corporation Virtual",
    "Amazon EC2",
    "Google Compute Engine",
    "Parallels",
];

/// The OS machine id, where one exists without app-level APIs.
#[cfg(not(any(target_os = "android", target_os = "ios")))]
fn machine_id() -> Option<String> {
    machine_uid::get().ok()
}

/// Android (ANDROID_ID) and iOS (identifierForVendor) expose identity only through app APIs:
/// the host passes it as the fingerprint override.
#[cfg(any(target_os = "android", target_os = "ios"))]
fn machine_id() -> Option<String> {
    None
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod os {
    use std::fs;
    use std::path::Path;

    use super::HYPERVISOR_VENDORS;

    fn read(path: impl AsRef<Path>) -> Option<String> {
        fs::read_to_string(path).ok()
    }

    /// uname(2): one syscall, where /proc/sys/kernel/hostname costs an open and reads.
    pub fn hostname() -> Option<String> {
        Some(
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
        )
    }

    pub fn cpu() -> Option<String> {
        // CPUID answers in nanoseconds; /proc/cpuinfo takes >100 µs to generate (it samples
        // every core's clock), so it is only the fallback for other architectures.
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        if let Some(brand) = raw_cpuid::CpuId::new().get_processor_brand_string() {
            return Some(brand.as_str().trim().to_owned());
        }
        let info = read("/proc/cpuinfo")?;
        let field = |name: &str| {
            info.lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        };
        // x86 has "model name"; many ARM kernels only "CPU implementer"/"CPU part".
        field("model name").or_else(|| {
            let parts: Vec<String> = ["CPU implementer", "CPU architecture", "CPU part"]
                .iter()
                .filter_map(|f| field(f))
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
    }

    /// Physical interfaces only: they have a `device` link; bridges, veths, tunnels and
    /// loopback do not. Randomised or stolen addresses (`addr_assign_type` != 0) are skipped.
    pub fn macs() -> Option<String> {
        let mut macs: Vec<String> = fs::read_dir("/sys/class/net")
            .ok()?
            .flatten()
            .filter(|e| e.path().join("device").exists())
            .filter(|e| read(e.path().join("addr_assign_type")).is_none_or(|t| t.trim() == "0"))
            .filter_map(|e| read(e.path().join("address")))
            .map(|a| a.trim().to_ascii_lowercase())
            .filter(|a| !a.is_empty() && a != "00:00:00:00:00:00")
            .collect();
        macs.sort();
        macs.dedup();
        (!macs.is_empty()).then(|| macs.join(","))
    }

    /// sysinfo(2), rounded to whole GiB so firmware reservations moving a few MiB change
    /// nothing.
    pub fn memory_gib() -> Option<u64> {
        let info = rustix::system::sysinfo();
        // `totalram` is a C `unsigned long`: u32 on 32-bit targets, so the conversion stays.
        #[allow(clippy::useless_conversion)]
        let bytes = u64::from(info.totalram).checked_mul(u64::from(info.mem_unit.max(1)))?;
        Some((bytes + (1 << 29)) >> 30)
    }

    /// Serial or WWID of the disk holding `/`, where the kernel exposes one.
    pub fn root_disk() -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let dev = fs::metadata("/").ok()?.dev();
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        // One readlink instead of canonicalize's one per path component; the kernel
        // resolves the `..` in the joined path.
        let link = Path::new("/sys/dev/block").join(format!("{major}:{minor}"));
        let mut node = Path::new("/sys/dev/block").join(fs::read_link(&link).ok()?);
        if node.join("partition").exists() {
            node = node.parent()?.to_path_buf();
        }
        ["device/serial", "device/wwid", "wwid", "serial"]
            .iter()
            .filter_map(|f| read(node.join(f)))
            .map(|v| v.trim().to_owned())
            .find(|v| !v.is_empty())
    }

    pub fn virtualization() -> Vec<String> {
        let mut signals = Vec::new();
        if Path::new("/.dockerenv").exists() {
            signals.push("container: /.dockerenv".to_owned());
        }
        if Path::new("/run/.containerenv").exists() {
            signals.push("container: /run/.containerenv".to_owned());
        }
        if let Some(cgroup) = read("/proc/1/cgroup")
            && let Some(kind) = ["docker", "kubepods", "containerd", "lxc", "libpod"]
                .iter()
                .find(|k| cgroup.contains(*k))
        {
            signals.push(format!("container: cgroup {kind}"));
        }
        for file in ["sys_vendor", "product_name"] {
            if let Some(value) = read(format!("/sys/class/dmi/id/{file}"))
                && let Some(vendor) = HYPERVISOR_VENDORS.iter().find(|v| value.contains(*v))
            {
                signals.push(format!("hypervisor: DMI {file} {vendor}"));
            }
        }
        if hypervisor_flag() {
            signals.push("hypervisor: cpu flag".to_owned());
        }
        signals
    }

    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    fn hypervisor_flag() -> bool {
        raw_cpuid::CpuId::new()
            .get_feature_info()
            .is_some_and(|f| f.has_hypervisor())
    }

    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    fn hypervisor_flag() -> bool {
        read("/proc/cpuinfo").is_some_and(|info| {
            info.lines()
                .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"))
        })
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod os {
    use sysinfo::{CpuRefreshKind, MemoryRefreshKind, Networks, RefreshKind, System};

    use super::HYPERVISOR_VENDORS;

    // sysinfo 0.40 returns Result from its constructors; an unreadable part is just absent.
    fn cpu_system() -> Option<System> {
        System::new_with_specifics(RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing())).ok()
    }

    pub fn hostname() -> Option<String> {
        System::host_name().ok()
    }

    pub fn cpu() -> Option<String> {
        cpu_system()?.cpus().first().map(|c| c.brand().to_owned())
    }

    pub fn macs() -> Option<String> {
        let networks = Networks::new_with_refreshed_list().ok()?;
        let mut macs: Vec<String> = (&networks)
            .into_iter()
            .map(|(_, data)| data.mac_address().to_string())
            .filter(|m| m != "00:00:00:00:00:00")
            .collect();
        macs.sort();
        macs.dedup();
        (!macs.is_empty()).then(|| macs.join(","))
    }

    pub fn memory_gib() -> Option<u64> {
        let sys = System::new_with_specifics(
            RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram()),
        )
        .ok()?;
        Some((sys.total_memory() + (1 << 29)) >> 30)
    }

    pub fn root_disk() -> Option<String> {
        // Not exposed without elevated APIs on macOS/Windows; the machine id covers identity.
        None
    }

    pub fn virtualization() -> Vec<String> {
        cpu_system()
            .and_then(|sys| sys.cpus().first().map(|c| c.vendor_id().to_owned()))
            .into_iter()
            .filter(|v| HYPERVISOR_VENDORS.iter().any(|h| v.contains(h)))
            .map(|v| format!("hypervisor: cpu vendor {v}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::FixedComponents;

    #[test]
    fn reads_this_machine_consistently() {
        let a = SystemComponents.read();
        let b = SystemComponents.read();
        assert_eq!(a, b);
        assert!(a.values.contains_key(component::OS));
        assert_eq!(this_machine("p").id, this_machine("p").id);
    }

    #[test]
    fn override_replaces_hardware_but_keeps_virtualization() {
        let mut raw = RawComponents::default();
        raw.values.insert("machine_id".into(), "m".into());
        raw.virtualization.push("container: test".into());
        let source = FixedComponents(raw);
        let fp = fingerprint_with(&source, "p", Some("node-17"));
        assert_eq!(fp.components.keys().collect::<Vec<_>>(), ["override"]);
        assert!(fp.is_virtual);
        assert_eq!(fp, fingerprint_with(&source, "p", Some(" node-17 ")));
        assert_ne!(fp.id, fingerprint_with(&source, "p", Some("node-18")).id);
        // Empty override is no override.
        assert!(
            fingerprint_with(&source, "p", Some(""))
                .components
                .contains_key("machine_id")
        );
    }
}
