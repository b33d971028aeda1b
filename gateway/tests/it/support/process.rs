//! Child processes started by tests.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Has the kernel kill the child `cmd` starts (SIGKILL) when the thread that starts it ends:
/// `PR_SET_PDEATHSIG` is tied to the starting thread, not the process, so start it from a thread
/// that lives as long as the child should. A gateway started this way never outlives the test.
pub fn killed_with_starting_thread(cmd: &mut Command) -> &mut Command {
    #[allow(unsafe_code)]
    // SAFETY: prctl(2) with constant arguments, async-signal-safe, in the forked child.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}
