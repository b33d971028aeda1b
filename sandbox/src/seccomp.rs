//! The seccomp filter every sandboxed tool runs under, compiled once to classic BPF and handed to
//! bubblewrap (`--seccomp FD`), which installs it right before it executes the tool.
//!
//! It is a deny list: tools are arbitrary programs, and the namespaces already take away what
//! the listed calls would reach. What it refuses, with `EPERM`:
//! - debugging other processes: `ptrace`, `process_vm_readv/writev`, `kcmp`;
//! - changing the file-system view: the `mount` family (old and new API), `pivot_root`, `chroot`;
//! - new namespaces: `unshare`, `setns`, and `clone` with any `CLONE_NEW*` flag;
//! - kernel attack surface no tool needs: keyrings, `bpf`, `perf_event_open`, `io_uring_*`,
//!   `userfaultfd`, module and kexec loading, `open_by_handle_at`, `quotactl`, swap, reboot;
//! - terminal injection: `ioctl(TIOCSTI)` and `ioctl(TIOCLINUX)`, compared on the low 32 bits
//!   so that a request with high bits set (which the kernel truncates) is caught too;
//! - sockets of any family but [`SOCKET_FAMILIES`] (`socket` and `socketpair`): a network
//!   namespace contains only some families, and `AF_VSOCK` for one reaches the hypervisor
//!   whatever `--unshare-net` says (the reasons per family: docs/sandbox.md).
//!
//! Two rules sit in front of the compiled rule set because `seccompiler` cannot express them:
//! x32-ABI system calls (numbers with bit 30 set, which would otherwise slip past a deny list
//! keyed on x86-64 numbers) are refused, and `clone3` answers `ENOSYS` (its flags live in memory
//! a filter cannot read; `ENOSYS` makes the C library fall back to `clone`, which is checked).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};

/// Why the filter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("the sandbox's seccomp filter supports x86_64 and aarch64, not {0}")]
    Architecture(&'static str),
    #[error("cannot compile the seccomp filter: {0}")]
    Compile(#[from] seccompiler::BackendError),
}

/// Calls refused outright, whatever their arguments.
const DENIED: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_keyctl,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_userfaultfd,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_quotactl,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_syslog,
    libc::SYS_personality,
];

/// The socket families a tool may open: those a network namespace contains and tools use
/// (`AF_UNIX` for the endpoint proxy and local IPC, `AF_INET`/`AF_INET6` for loopback and the
/// C library, `AF_NETLINK` for the interface queries of name resolution). Every other family is
/// refused by `socket` and `socketpair`.
pub const SOCKET_FAMILIES: &[libc::c_int] = &[
    libc::AF_UNIX,
    libc::AF_INET,
    libc::AF_INET6,
    libc::AF_NETLINK,
];

/// Every namespace flag `clone` could be asked for.
const CLONE_NEW_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    0x80, // CLONE_NEWTIME
];

const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn target() -> Result<(TargetArch, u32), SeccompError> {
    // AUDIT_ARCH_* values: EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
    match std::env::consts::ARCH {
        "x86_64" => Ok((TargetArch::x86_64, 62 | 0x8000_0000 | 0x4000_0000)),
        "aarch64" => Ok((TargetArch::aarch64, 183 | 0x8000_0000 | 0x4000_0000)),
        other => Err(SeccompError::Architecture(other)),
    }
}

fn cond(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, SeccompError> {
    Ok(SeccompCondition::new(arg, len, op, value)?)
}

#[allow(
    clippy::cast_sign_loss,
    reason = "the CLONE_NEW* flags are positive bit masks"
)]
fn rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|nr| (*nr, Vec::new())).collect();
    // ioctl(fd, TIOCSTI / TIOCLINUX, ...): a 32-bit comparison ignores the high bits.
    let ioctl = [libc::TIOCSTI, libc::TIOCLINUX]
        .into_iter()
        .map(|request| {
            // The request's type differs between C libraries (an int on musl).
            #[allow(clippy::unnecessary_cast)]
            let request = request as u64;
            Ok(SeccompRule::new(vec![cond(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                request,
            )?])?)
        })
        .collect::<Result<Vec<_>, SeccompError>>()?;
    rules.insert(libc::SYS_ioctl, ioctl);
    // clone(flags, ...) with any CLONE_NEW* bit set.
    let clone = CLONE_NEW_FLAGS
        .iter()
        .map(|flag| {
            let flag = *flag as u64;
            Ok(SeccompRule::new(vec![cond(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )?])?)
        })
        .collect::<Result<Vec<_>, SeccompError>>()?;
    rules.insert(libc::SYS_clone, clone);
    // socket(family, ...) and socketpair(family, ...) with a family not in SOCKET_FAMILIES: one
    // rule whose conditions all hold (the family is none of them), on the low 32 bits (an int).
    for nr in [libc::SYS_socket, libc::SYS_socketpair] {
        let other_family = SOCKET_FAMILIES
            .iter()
            .map(|family| {
                cond(
                    0,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Ne,
                    u64::from(family.unsigned_abs()),
                )
            })
            .collect::<Result<Vec<_>, SeccompError>>()?;
        rules.insert(nr, vec![SeccompRule::new(other_family)?]);
    }
    Ok(rules)
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Builds the filter as classic BPF instructions.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "syscall numbers and errno values are small positive constants"
)]
pub fn program() -> Result<BpfProgram, SeccompError> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    let (arch, audit_arch) = target()?;
    let compiled: BpfProgram = SeccompFilter::new(
        rules()?,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?
    .try_into()?;
    // seccomp_data: nr at offset 0, arch at offset 4.
    let mut prefix = vec![
        stmt(LD_W_ABS, 4),
        jump(JEQ_K, audit_arch, 1, 0),
        stmt(RET_K, RET_KILL_PROCESS),
        stmt(LD_W_ABS, 0),
    ];
    if arch == TargetArch::x86_64 {
        prefix.push(jump(JGE_K, X32_SYSCALL_BIT, 0, 1));
        prefix.push(stmt(RET_K, RET_ERRNO | libc::EPERM as u32));
    }
    prefix.push(jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1));
    prefix.push(stmt(RET_K, RET_ERRNO | libc::ENOSYS as u32));
    prefix.extend(compiled);
    Ok(prefix)
}

/// The filter in the byte layout `struct sock_filter[]` that bubblewrap reads from its fd.
pub fn program_bytes() -> Result<Vec<u8>, SeccompError> {
    let program = program()?;
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for insn in program {
        bytes.extend_from_slice(&insn.code.to_ne_bytes());
        bytes.push(insn.jt);
        bytes.push(insn.jf);
        bytes.extend_from_slice(&insn.k.to_ne_bytes());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_is_whole_instructions_and_within_the_kernel_limit() {
        let bytes = program_bytes().expect("filter builds");
        assert_eq!(bytes.len() % 8, 0);
        assert!(bytes.len() / 8 < 4096, "{} instructions", bytes.len() / 8);
    }

    #[test]
    fn program_starts_by_checking_the_architecture() {
        let program = program().expect("filter builds");
        assert_eq!(program[0].k, 4, "loads seccomp_data.arch first");
        assert_eq!(
            program[2].k, 0x8000_0000,
            "a foreign architecture kills the process"
        );
    }

    #[test]
    fn sockets_are_limited_to_the_namespaced_families() {
        let rules = rules().expect("rules");
        for nr in [libc::SYS_socket, libc::SYS_socketpair] {
            assert_eq!(rules[&nr].len(), 1, "one rule for {nr}");
        }
        assert!(!SOCKET_FAMILIES.contains(&libc::AF_VSOCK));
        assert!(!SOCKET_FAMILIES.contains(&libc::AF_ALG));
        assert!(!SOCKET_FAMILIES.contains(&libc::AF_PACKET));
    }

    #[test]
    fn every_required_family_is_denied() {
        for nr in [
            libc::SYS_ptrace,
            libc::SYS_mount,
            libc::SYS_pivot_root,
            libc::SYS_chroot,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_keyctl,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_io_uring_setup,
        ] {
            assert!(DENIED.contains(&nr), "syscall {nr} must be denied");
        }
    }
}
