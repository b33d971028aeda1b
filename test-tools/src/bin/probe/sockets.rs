//! Socket families as the probes try them: `socket()` and `socketpair()` of a family named in a
//! test's arguments, answering the errno each got (0 when it opened). Shared by the escape probe
//! (the gateway's sandbox) and the Lambda probe (the LocalStack Lambda host's sandbox).

/// (name, family, type, protocol) of every family the probes know.
pub const FAMILIES: &[(&str, libc::c_int, libc::c_int, libc::c_int)] = &[
    // Allowed: what a network namespace contains and tools use.
    ("unix", libc::AF_UNIX, libc::SOCK_STREAM, 0),
    ("inet", libc::AF_INET, libc::SOCK_DGRAM, 0),
    ("inet6", libc::AF_INET6, libc::SOCK_DGRAM, 0),
    ("netlink", libc::AF_NETLINK, libc::SOCK_RAW, 0),
    // Refused. Numbers as in linux/socket.h (not every C library names them all).
    ("vsock", 40, libc::SOCK_STREAM, 0),
    ("alg", 38, libc::SOCK_SEQPACKET, 0),
    ("key", 15, libc::SOCK_RAW, 2),
    ("packet", 17, libc::SOCK_RAW, 0x0300),
    ("bluetooth", 31, libc::SOCK_RAW, 1),
    ("tipc", 30, libc::SOCK_RDM, 0),
    ("rds", 21, libc::SOCK_SEQPACKET, 0),
    ("can", 29, libc::SOCK_RAW, 1),
    ("kcm", 41, libc::SOCK_DGRAM, 0),
    ("qipcrtr", 42, libc::SOCK_DGRAM, 0),
    ("smc", 43, libc::SOCK_STREAM, 0),
    ("xdp", 44, libc::SOCK_RAW, 0),
    ("mctp", 45, libc::SOCK_DGRAM, 0),
    ("llc", 26, libc::SOCK_DGRAM, 0),
    ("appletalk", 5, libc::SOCK_DGRAM, 0),
    ("ax25", 3, libc::SOCK_SEQPACKET, 0),
    ("x25", 9, libc::SOCK_SEQPACKET, 0),
];

/// What `socket()` and `socketpair()` of the family `name` answered: (errno of socket, errno
/// of socketpair), 0 for one that opened (and was closed again). `None` for an unknown name.
pub fn try_family(name: &str) -> Option<(i32, i32)> {
    let &(_, family, kind, protocol) = FAMILIES.iter().find(|(n, ..)| *n == name)?;
    let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(-1);
    // SAFETY: socket(2) with integer arguments; a returned descriptor is closed right away.
    #[allow(unsafe_code)]
    let single = unsafe {
        let fd = libc::socket(family, kind, protocol);
        if fd >= 0 {
            libc::close(fd);
            0
        } else {
            errno()
        }
    };
    let mut fds = [-1; 2];
    // SAFETY: socketpair(2) writes two descriptors into `fds`, closed right away when it opened.
    #[allow(unsafe_code)]
    let pair = unsafe {
        if libc::socketpair(family, kind, protocol, fds.as_mut_ptr()) == 0 {
            libc::close(fds[0]);
            libc::close(fds[1]);
            0
        } else {
            errno()
        }
    };
    Some((single, pair))
}
