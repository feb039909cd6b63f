//! The libvirt domain XML of one viewer VM.
//!
//! Every value spliced in is either validated (pair, generation, numbers) or a path that
//! vruntask chose itself, and paths are XML-escaped anyway.

use std::path::PathBuf;

use vrun_proto::domain::metadata_element;
use vrun_proto::Pair;

use crate::accel::Accel;

/// How the VM boots.
#[derive(Debug, Clone)]
pub enum Boot {
    /// Direct kernel boot of the viewer image (kernel + initramfs).
    Kernel { kernel: PathBuf, initrd: PathBuf, cmdline: String },
    /// A disk image platform, booted through a copy-on-write overlay.
    Disk { overlay: PathBuf },
}

/// How the viewer is reached.
#[derive(Debug, Clone)]
pub enum Net {
    /// QEMU user-mode networking with a TCP forward from `bind:host_port` (`bind` is the
    /// node's advertise address, 127.0.0.1 unless configured: the front end must reach it).
    Loopback { bind: std::net::Ipv4Addr, host_port: u16, guest_port: u16 },
    /// A named libvirt network (production); the address comes from the VIEWERUP line.
    Bridge { network: String },
}

impl Net {
    /// The address the job reports for the viewer, the one the front end dials: in forward
    /// mode the node's advertise address and the forwarded port (the guest's own address is
    /// QEMU's private one), in bridge mode what the guest's `VIEWERUP` line says.
    pub fn reported_address(&self, guest_addr: &str) -> String {
        match self {
            Net::Loopback { bind, host_port, .. } => format!("{bind}:{host_port}"),
            Net::Bridge { .. } => guest_addr.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DomainSpec {
    pub name: String,
    pub pair: Pair,
    pub generation: i64,
    /// The launching agent-monitor's id, recorded in the metadata.
    pub monitor_id: String,
    /// The node it runs on, recorded in the metadata (its DomainMonitor acts on it).
    pub node: String,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub accel: Accel,
    pub boot: Boot,
    pub config_disk: PathBuf,
    pub output_disk: PathBuf,
    pub serial_log: PathBuf,
    pub net: Net,
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

fn disk(path: &std::path::Path, dev: &str, format: &str, readonly: bool) -> String {
    format!(
        "    <disk type='file' device='disk'>\n      <driver name='qemu' type='{format}'/>\n      <source file='{}'/>\n      <target dev='{dev}' bus='virtio'/>{}\n    </disk>\n",
        escape(&path.to_string_lossy()),
        if readonly { "\n      <readonly/>" } else { "" }
    )
}

impl DomainSpec {
    pub fn to_xml(&self) -> String {
        let os = match &self.boot {
            Boot::Kernel { kernel, initrd, cmdline } => format!(
                "    <type arch='x86_64' machine='q35'>hvm</type>\n    <kernel>{}</kernel>\n    <initrd>{}</initrd>\n    <cmdline>{}</cmdline>\n",
                escape(&kernel.to_string_lossy()),
                escape(&initrd.to_string_lossy()),
                escape(cmdline)
            ),
            Boot::Disk { .. } => "    <type arch='x86_64' machine='q35'>hvm</type>\n    <boot dev='hd'/>\n".to_string(),
        };
        // The image's init expects the configuration disk first and the output disk second.
        let mut disks = String::new();
        if let Boot::Disk { overlay } = &self.boot {
            disks.push_str(&disk(overlay, "vda", "qcow2", false));
            disks.push_str(&disk(&self.config_disk, "vdb", "raw", true));
            disks.push_str(&disk(&self.output_disk, "vdc", "raw", false));
        } else {
            disks.push_str(&disk(&self.config_disk, "vda", "raw", true));
            disks.push_str(&disk(&self.output_disk, "vdb", "raw", false));
        }
        let (iface, qemu_args) = match &self.net {
            // libvirt 9's <interface type='user'> cannot forward ports without passt, so the
            // NIC is added on QEMU's own command line, at a fixed root-bus slot that libvirt's
            // own address assignment (which starts at 0x1) does not reach. The forward binds loopback only, and
            // restrict=on keeps the guest from reaching any network (forwards still work).
            Net::Loopback { bind, host_port, guest_port } => (
                String::new(),
                format!(
                    "  <qemu:commandline>\n    <qemu:arg value='-netdev'/>\n    <qemu:arg value='user,id=vrunnet0,restrict=on,hostfwd=tcp:{bind}:{host_port}-:{guest_port}'/>\n    <qemu:arg value='-device'/>\n    <qemu:arg value='virtio-net-pci,netdev=vrunnet0,bus=pcie.0,addr=0x10'/>\n  </qemu:commandline>\n"
                ),
            ),
            Net::Bridge { network } => (
                format!("    <interface type='network'>\n      <source network='{}'/>\n      <model type='virtio'/>\n    </interface>\n", escape(network)),
                String::new(),
            ),
        };
        format!(
            "<domain type='{accel}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n  <name>{name}</name>\n  <metadata>\n    {meta}\n  </metadata>\n  <memory unit='MiB'>{mem}</memory>\n  <vcpu>{vcpus}</vcpu>\n  <os>\n{os}  </os>\n  <features><acpi/></features>\n  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n  <on_crash>destroy</on_crash>\n  <devices>\n{disks}{iface}    <serial type='file'>\n      <source path='{serial}'/>\n      <target port='0'/>\n    </serial>\n    <controller type='usb' model='none'/>\n    <memballoon model='none'/>\n  </devices>\n{qemu_args}</domain>\n",
            accel = self.accel.domain_type(),
            name = escape(&self.name),
            meta = metadata_element(&self.pair, self.generation, &self.monitor_id, &self.node),
            mem = self.memory_mib,
            vcpus = self.vcpus,
            serial = escape(&self.serial_log.to_string_lossy()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reported_address_is_what_the_front_end_dials() {
        let fwd = Net::Loopback { bind: "10.20.30.40".parse().unwrap(), host_port: 40123, guest_port: 8080 };
        assert_eq!(fwd.reported_address("10.0.2.15:8080"), "10.20.30.40:40123", "not QEMU's private address");
        let bridge = Net::Bridge { network: "vrun".into() };
        assert_eq!(bridge.reported_address("192.168.122.7:8080"), "192.168.122.7:8080");
    }
}
