//! The system calls of the direct and adopted paths, and every `unsafe`
//! block they need, in one place: each function takes a descriptor this
//! process owns (an [`OwnedFd`], or a number read from a live handle in the
//! same call) and does one thing to it. The files after this one in the
//! chain (`conn`, `writers`, `adopted`, `direct`) hold no `unsafe`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A descriptor of our own for the socket `fd` names (`F_DUPFD_CLOEXEC`),
/// or None where that fails. `fd` must be the descriptor of an open
/// socket, read from its handle by the caller in the same call.
pub fn duplicate(fd: i32) -> Option<OwnedFd> {
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is open (see above); F_DUPFD_CLOEXEC makes a new
    // descriptor of our own for the same socket.
    let own = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if own < 0 {
        return None;
    }
    // SAFETY: `own` was just made, and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(own) })
}

/// Registers our descriptor with tokio's reactor for `interest` (None if
/// it cannot be). A descriptor can be registered once at a time: the
/// caller keeps one registration per socket.
pub fn watch(fd: Arc<OwnedFd>, interest: Interest) -> Option<AsyncFd<Arc<OwnedFd>>> {
    // SAFETY: the descriptor is our own, kept open by the `Arc` the
    // registration holds for as long as it lives.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.ok()
}

/// Ends our side of the connection (`SHUT_WR`): a `FIN` goes after what
/// is queued.
pub fn shut_write(fd: &OwnedFd) {
    // SAFETY: our open descriptor.
    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) };
}

/// Bytes in a socket's send queue not yet acknowledged by the peer, where
/// the system says (`SIOCOUTQ` on Linux, `SO_NWRITE` on macOS).
pub fn unsent(fd: &OwnedFd) -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        let mut queued: libc::c_int = 0;
        // SAFETY: `fd` is an open socket we own; TIOCOUTQ (SIOCOUTQ) writes
        // one int.
        let done = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
        (done == 0).then_some(queued.max(0) as usize)
    }
    #[cfg(target_vendor = "apple")]
    {
        let mut queued: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: as above; SO_NWRITE writes one int of `len` bytes.
        let done = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NWRITE,
                (&mut queued as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (done == 0).then_some(queued.max(0) as usize)
    }
    #[cfg(not(any(target_os = "linux", target_vendor = "apple")))]
    {
        let _ = fd;
        None
    }
}

/// Makes the last close of a socket reset the connection (`SO_LINGER` on,
/// with a time of 0) instead of ending it: the kernel discards what is
/// still queued for the client and sends `RST`, rather than keeping the
/// bytes (megabytes, for a client that never reads) in an orphaned socket
/// in `FIN-WAIT-1` until the peer takes them or the kernel gives up. For
/// the endings that drop a client (slow consumer, stall, `closeTimeout`,
/// `closeAll()`'s timeout). Returns whether the option was set.
///
/// `fd` must be open, read by the caller from the socket's live handle in
/// the same call: only the socket is changed (the option is shared by
/// every descriptor of it), nothing is written.
pub fn reset_on_close(fd: i32) -> bool {
    if fd < 0 {
        return false;
    }
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is an open socket (see above); SO_LINGER reads one
    // `linger` of the given size.
    let done = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    done == 0
}

/// Writes `bytes` to `fd` without blocking and without SIGPIPE; returns how
/// many were taken (0 for `EAGAIN`).
pub fn send(fd: &OwnedFd, bytes: &[u8]) -> std::io::Result<usize> {
    let mut sent = 0;
    while sent < bytes.len() {
        let rest = &bytes[sent..];
        // SAFETY: `fd` is an open descriptor we own; the buffer is valid for
        // `rest.len()` bytes.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            sent += n as usize;
            continue;
        }
        let err = std::io::Error::last_os_error();
        match err.kind() {
            std::io::ErrorKind::WouldBlock => break,
            std::io::ErrorKind::Interrupted => continue,
            _ => return Err(err),
        }
    }
    Ok(sent)
}

/// Writes `parts`, in order, to `fd` in one `sendmsg()` without blocking
/// and without SIGPIPE; returns how many bytes were taken (0 for `EAGAIN`).
/// One call: a stream socket that takes part of it is full.
pub fn send_vectored(fd: &OwnedFd, parts: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
    // The kernel takes at most IOV_MAX (1024) parts in one call.
    let parts = &parts[..parts.len().min(1024)];
    loop {
        // SAFETY: an all-zero msghdr is valid (no name, no control data).
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        // IoSlice is ABI-compatible with iovec on Unix; the kernel only
        // reads the parts, which outlive the call.
        message.msg_iov = parts.as_ptr() as *mut libc::iovec;
        message.msg_iovlen = parts.len() as _;
        // SAFETY: `fd` is an open descriptor we own; `message` points at
        // valid parts for the duration of the call.
        let n = unsafe {
            libc::sendmsg(
                fd.as_raw_fd(),
                &message,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = std::io::Error::last_os_error();
        match err.kind() {
            std::io::ErrorKind::WouldBlock => return Ok(0),
            std::io::ErrorKind::Interrupted => continue,
            _ => return Err(err),
        }
    }
}

/// Whether `fd` has room for writing now (`poll`, not waiting).
pub fn writable_now(fd: &OwnedFd) -> bool {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a zero timeout.
    let n = unsafe { libc::poll(&mut poll, 1, 0) };
    n > 0 && poll.revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0
}

/// Reads and discards what the client sent (an SSE client sends nothing
/// after its request) until there is nothing more: returns true once its
/// side has ended or the connection failed, false when it would block.
pub fn drain(fd: &OwnedFd) -> bool {
    let mut scratch = [0u8; 1024];
    loop {
        // SAFETY: `fd` is our open descriptor; the buffer is valid for its
        // length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                scratch.as_mut_ptr().cast(),
                scratch.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n == 0 {
            return true;
        }
        if n > 0 {
            continue;
        }
        match std::io::Error::last_os_error().kind() {
            std::io::ErrorKind::WouldBlock => return false,
            std::io::ErrorKind::Interrupted => continue,
            _ => return true,
        }
    }
}

/// Puts this thread (a runtime's worker) under `SCHED_BATCH` at its nice
/// value (see `super::writers`), once. Linux only: elsewhere threads keep
/// their policy.
pub fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        thread_local!(static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
        if !LOWERED.with(|lowered| lowered.replace(true)) {
            // SAFETY: a plain system call on this thread, with a valid
            // parameter; a failure leaves its policy as it was.
            unsafe {
                let batch = libc::sched_param { sched_priority: 0 };
                libc::sched_setscheduler(0, libc::SCHED_BATCH, &batch);
            }
        }
    }
}

/// Gives the pages that freed memory left in the allocator's heaps back to
/// the system (glibc's `malloc_trim`, which also releases free pages in the
/// middle of a heap, not only at its top); elsewhere nothing.
pub fn give_back_freed_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: takes no pointer; glibc locks each heap as it goes.
    unsafe {
        libc::malloc_trim(0);
    }
}
