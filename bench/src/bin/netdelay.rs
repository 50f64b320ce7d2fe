//! netdelay: a steady one-way delay on a simulated host's link, for kernels without `netem`
//! (scripts/hosts; docs/partitions.md).
//!
//!     netdelay QUEUE DELAY_US
//!
//! Run inside a host's network namespace; once it prints "netdelay: ready", an iptables rule
//! sends every packet leaving the host's eth0 to NFQUEUE number QUEUE (`--queue-bypass`: with
//! no netdelay, packets pass at once). Each packet is held DELAY_US microseconds from its arrival here, then accepted, in
//! order: packets are numbered by the kernel in arrival order, so one batch verdict ("accept
//! every packet up to N") releases all that are due. Only packet metadata crosses to user
//! space, never payloads.
//!
//! The netlink messages are built by hand (nfnetlink_queue: NFQNL_MSG_CONFIG, _PACKET,
//! _VERDICT_BATCH), so the tool needs no C library beyond libc.

use std::collections::VecDeque;
use std::io::{Error, Result};
use std::time::{Duration, Instant};

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQNL_MSG_VERDICT_BATCH: u16 = 3;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NFQA_CFG_F_GSO: u32 = 4;
const NF_ACCEPT: u32 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
const ENOENT_NEG: i32 = -libc::ENOENT;
/// Reads of the socket in one pass at the most, so that releases are not held up by traffic.
const READS_PER_PASS: usize = 64;
const NFGEN_HDRLEN: usize = 4;

/// One netlink message to the queue subsystem, built attribute by attribute.
struct Msg(Vec<u8>);

impl Msg {
    fn new(kind: u16, flags: u16, queue: u16) -> Msg {
        let mut b = vec![0u8; NLMSG_HDRLEN];
        b[4..6].copy_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
        b[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16 | flags).to_ne_bytes());
        // nfgenmsg: family AF_UNSPEC, version 0, the queue number (big-endian).
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&queue.to_be_bytes());
        Msg(b)
    }

    fn attr(mut self, kind: u16, payload: &[u8]) -> Msg {
        let len = 4 + payload.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(payload);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }

    fn send(mut self, fd: i32) -> Result<()> {
        let len = self.0.len() as u32;
        self.0[0..4].copy_from_slice(&len.to_ne_bytes());
        // SAFETY: a plain send(2) of an owned buffer on our own socket.
        let n = unsafe { libc::send(fd, self.0.as_ptr().cast(), self.0.len(), 0) };
        if n < 0 {
            return Err(Error::last_os_error());
        }
        Ok(())
    }
}

fn check(rc: i32, what: &str) -> Result<()> {
    if rc < 0 {
        let e = Error::last_os_error();
        return Err(Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// A netlink socket bound to QUEUE, metadata only, failing open when its queue is full.
fn open(queue: u16) -> Result<i32> {
    // SAFETY: socket(2), setsockopt(2), bind(2) and prctl(2) with values and buffers we own.
    unsafe {
        let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, NETLINK_NETFILTER);
        check(fd, "netlink socket")?;
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        let size = std::mem::size_of::<libc::sockaddr_nl>() as u32;
        check(
            libc::bind(fd, (&addr as *const libc::sockaddr_nl).cast(), size),
            "bind",
        )?;
        let one: i32 = 1;
        let on = (&one as *const i32).cast();
        check(
            libc::setsockopt(fd, libc::SOL_NETLINK, libc::NETLINK_NO_ENOBUFS, on, 4),
            "no enobufs",
        )?;
        let big: i32 = 8 << 20;
        let rcvbuf = (&big as *const i32).cast();
        check(
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, rcvbuf, 4),
            "rcvbuf",
        )?;
        // Wake-ups on time: no timer slack (default 50 us) on a 300 us delay.
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
        fd_config(fd, queue)?;
        Ok(fd)
    }
}

/// Binds the queue and sets it up, each step acknowledged (or its error returned): no packet
/// is queued to us before this returns, as the iptables rule comes after "ready".
fn fd_config(fd: i32, queue: u16) -> Result<()> {
    let ack = libc::NLM_F_ACK as u16;
    Msg::new(NFQNL_MSG_CONFIG, ack, queue)
        .attr(NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0])
        .send(fd)?;
    await_ack(fd, "bind")?;
    let mut params = 0u32.to_be_bytes().to_vec(); // copy range: no payload
    params.push(NFQNL_COPY_META);
    let flags = (NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO).to_be_bytes();
    Msg::new(NFQNL_MSG_CONFIG, ack, queue)
        .attr(NFQA_CFG_PARAMS, &params)
        .attr(NFQA_CFG_QUEUE_MAXLEN, &65536u32.to_be_bytes())
        .attr(NFQA_CFG_FLAGS, &flags)
        .attr(NFQA_CFG_MASK, &flags)
        .send(fd)?;
    await_ack(fd, "queue parameters")
}

fn await_ack(fd: i32, what: &str) -> Result<()> {
    let mut buf = [0u8; 4096];
    // SAFETY: a blocking recv(2) into a buffer we own.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    check(n as i32, what)?;
    match error_code(&buf[..n as usize]) {
        Some(0) => Ok(()),
        Some(code) => {
            let e = Error::from_raw_os_error(-code);
            Err(Error::new(e.kind(), format!("{what}: {e}")))
        }
        None => Err(Error::other(format!("{what}: no acknowledgement"))),
    }
}

/// The error code of an NLMSG_ERROR message (0: an acknowledgement), if MSG is one.
fn error_code(msg: &[u8]) -> Option<i32> {
    let kind = u16::from_ne_bytes(msg.get(4..6)?.try_into().ok()?);
    if kind != NLMSG_ERROR {
        return None;
    }
    Some(i32::from_ne_bytes(msg.get(16..20)?.try_into().ok()?))
}

/// The packet ids of every queued packet in BUF (several netlink messages a read).
fn packet_ids(buf: &[u8], out: &mut Vec<u32>) -> Result<()> {
    let mut at = 0;
    while at + NLMSG_HDRLEN <= buf.len() {
        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().unwrap());
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            break;
        }
        let msg = &buf[at..at + len];
        if kind == NLMSG_ERROR {
            // ENOENT answers a verdict for packets the kernel has flushed already (a hook
            // or the device went away): nothing is held, nothing to do.
            match error_code(msg) {
                Some(0) | Some(ENOENT_NEG) => {}
                Some(code) => return Err(Error::from_raw_os_error(-code)),
                None => return Err(Error::other("a short netlink error message")),
            }
        } else if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET {
            let mut a = NLMSG_HDRLEN + NFGEN_HDRLEN;
            while a + 4 <= msg.len() {
                let alen = u16::from_ne_bytes(msg[a..a + 2].try_into().unwrap()) as usize;
                let akind = u16::from_ne_bytes(msg[a + 2..a + 4].try_into().unwrap()) & 0x3fff;
                if alen < 4 || a + alen > msg.len() {
                    break;
                }
                if akind == NFQA_PACKET_HDR && alen >= 8 {
                    out.push(u32::from_be_bytes(msg[a + 4..a + 8].try_into().unwrap()));
                }
                a += alen.next_multiple_of(4);
            }
        }
        at += len.next_multiple_of(4);
    }
    Ok(())
}

fn accept_up_to(fd: i32, queue: u16, id: u32) -> Result<()> {
    let mut hdr = NF_ACCEPT.to_be_bytes().to_vec();
    hdr.extend_from_slice(&id.to_be_bytes());
    Msg::new(NFQNL_MSG_VERDICT_BATCH, 0, queue)
        .attr(NFQA_VERDICT_HDR, &hdr)
        .send(fd)
}

/// Waits for packets until DEADLINE (for ever without one): true when some may be readable.
fn wait(fd: i32, deadline: Option<Instant>) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = deadline.map(|d| {
        let left = d.saturating_duration_since(Instant::now());
        libc::timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        }
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: ppoll(2) on one pollfd we own, with a timeout we own or none.
    unsafe { libc::ppoll(&mut pfd, 1, tsp, std::ptr::null()) > 0 }
}

fn run(queue: u16, delay: Duration) -> Result<()> {
    let fd = open(queue)?;
    println!("netdelay: ready (queue {queue}, {} us)", delay.as_micros());
    let mut held: VecDeque<(Instant, u32)> = VecDeque::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut ids = Vec::new();
    loop {
        if wait(fd, held.front().map(|h| h.0)) {
            for _ in 0..READS_PER_PASS {
                // SAFETY: recv(2) into a buffer we own, not blocking.
                let n = unsafe {
                    libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
                };
                if n <= 0 {
                    break;
                }
                let now = Instant::now();
                ids.clear();
                packet_ids(&buf[..n as usize], &mut ids)?;
                held.extend(ids.iter().map(|&id| (now + delay, id)));
            }
        }
        let now = Instant::now();
        let mut last = None;
        while held.front().is_some_and(|h| h.0 <= now) {
            last = held.pop_front().map(|h| h.1);
        }
        if let Some(id) = last {
            accept_up_to(fd, queue, id)?;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parsed = match args.as_slice() {
        [_, q, us] => q.parse::<u16>().ok().zip(us.parse::<u64>().ok()),
        _ => None,
    };
    let Some((queue, us)) = parsed else {
        eprintln!("usage: netdelay QUEUE DELAY_US");
        std::process::exit(2);
    };
    if let Err(e) = run(queue, Duration::from_micros(us)) {
        eprintln!("netdelay: {e}");
        std::process::exit(1);
    }
}
