//! HTTP for the Schema Registry client, on the calling thread: ureq with a TCP transport
//! of its own whose every wait (connecting, sending, awaiting the answer) is a poll of at
//! most [`WAIT_SLICE`] with the host's interrupt hook between, as Kafka waits are. A
//! cancelled query unwinds out of the request at once and its socket closes with it: no
//! helper thread is left behind to finish a request nobody waits for.
//!
//! The one wait not cut into slices is name resolution (getaddrinfo blocks, as it does
//! in libpq's connections): ureq's own resolver would run it on a thread of its own when a
//! timeout is set, and leave that thread behind when the timeout passes.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, RustlsConnector, Transport,
};
use ureq::{Agent, Error};

use crate::error::Interrupt;

/// The longest a wait goes without running the interrupt hook.
const WAIT_SLICE: Duration = Duration::from_millis(20);

/// An agent whose requests wait in slices, running `interrupt` between them. Proxies
/// named in the environment (`HTTPS_PROXY`, …) are used as ureq's default agent uses
/// them (HTTP CONNECT; ureq is built without SOCKS).
pub fn agent(config: Config, interrupt: Interrupt) -> Agent {
    let connector = ().chain(ConnectProxyConnector::default()).chain(PolledConnector { interrupt }).chain(RustlsConnector::default());
    Agent::with_parts(config, connector, ResolverOnThisThread)
}

/// ureq's resolver, told there is no timeout, so that it looks names up on this thread.
#[derive(Debug)]
struct ResolverOnThisThread;

impl Resolver for ResolverOnThisThread {
    fn resolve(&self, uri: &Uri, config: &Config, _timeout: NextTimeout) -> Result<ResolvedSocketAddrs, Error> {
        DefaultResolver::default().resolve(uri, config, NextTimeout::default())
    }
}

/// Opens [`PolledTcp`] connections (unless an earlier connector of the chain, a CONNECT
/// proxy's, opened one).
#[derive(Debug)]
struct PolledConnector {
    interrupt: Interrupt,
}

impl<In: Transport> Connector<In> for PolledConnector {
    type Out = Either<In, PolledTcp>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, Error> {
        if let Some(transport) = chained {
            return Ok(Some(Either::A(transport)));
        }
        let deadline = deadline(details.timeout);
        let mut failure = None;
        // Each address in turn, with what is left of the time.
        for address in &details.addrs {
            match connect(*address, deadline, self.interrupt) {
                Ok(stream) => {
                    let config = details.config;
                    let buffers = LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size());
                    return Ok(Some(Either::B(PolledTcp { stream, buffers, interrupt: self.interrupt })));
                }
                Err(error) if error.kind() == io::ErrorKind::TimedOut => return Err(Error::Timeout(details.timeout.reason)),
                Err(error) => failure = Some(error),
            }
        }
        Err(failure.map_or(Error::HostNotFound, Error::Io))
    }
}

/// A non-blocking TCP connection to `address`, waiting for it in slices.
fn connect(address: SocketAddr, deadline: Option<Instant>, interrupt: Interrupt) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    match socket.connect(&address.into()) {
        Ok(()) => {}
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {
            wait(&socket, libc::POLLOUT, deadline, interrupt)?;
            if let Some(error) = socket.take_error()? {
                return Err(error);
            }
        }
        Err(error) => return Err(error),
    }
    let stream = TcpStream::from(socket);
    // Requests are one small write each: send them at once.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// When a wait of `timeout` ends; `None` if never.
fn deadline(timeout: NextTimeout) -> Option<Instant> {
    if timeout.after.is_not_happening() {
        return None;
    }
    Instant::now().checked_add(*timeout.after)
}

/// Waits until `socket` is ready for `events` (or failed), in slices with `interrupt`
/// between them; `TimedOut` once `deadline` passed.
fn wait(socket: &impl AsRawFd, events: libc::c_short, deadline: Option<Instant>, interrupt: Interrupt) -> io::Result<()> {
    loop {
        interrupt();
        let slice = match deadline {
            None => WAIT_SLICE,
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(WAIT_SLICE),
                _ => return Err(io::ErrorKind::TimedOut.into()),
            },
        };
        let mut polled = libc::pollfd { fd: socket.as_raw_fd(), events, revents: 0 };
        let milliseconds = slice.as_micros().div_ceil(1000) as libc::c_int;
        // SAFETY: poll reads and writes the one pollfd it is given, which lives through the call.
        let ready = unsafe { libc::poll(&mut polled, 1, milliseconds) };
        if ready > 0 {
            return Ok(());
        }
        if ready < 0 {
            // A signal (a query cancel among them) ends the poll early: the hook sees it.
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

/// A TCP connection in non-blocking mode whose reads and writes wait in slices.
struct PolledTcp {
    stream: TcpStream,
    buffers: LazyBuffers,
    interrupt: Interrupt,
}

impl fmt::Debug for PolledTcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolledTcp").field("peer", &self.stream.peer_addr().ok()).finish()
    }
}

impl PolledTcp {
    /// Waits for `events`; the timeout's reason once its deadline passed.
    fn wait(&self, events: libc::c_short, deadline: Option<Instant>, timeout: NextTimeout) -> Result<(), Error> {
        wait(&self.stream, events, deadline, self.interrupt).map_err(|error| match error.kind() {
            io::ErrorKind::TimedOut => Error::Timeout(timeout.reason),
            _ => Error::Io(error),
        })
    }
}

impl Transport for PolledTcp {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let timeout = timeout.for_write();
        let deadline = deadline(timeout);
        let mut sent = 0;
        while sent < amount {
            match (&self.stream).write(&self.buffers.output()[sent..amount]) {
                Ok(0) => return Err(Error::Io(io::ErrorKind::WriteZero.into())),
                Ok(written) => sent += written,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => self.wait(libc::POLLOUT, deadline, timeout)?,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(Error::Io(error)),
            }
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        let timeout = timeout.for_read();
        let deadline = deadline(timeout);
        loop {
            match (&self.stream).read(self.buffers.input_append_buf()) {
                Ok(read) => {
                    self.buffers.input_appended(read);
                    return Ok(read > 0);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => self.wait(libc::POLLIN, deadline, timeout)?,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(Error::Io(error)),
            }
        }
    }

    /// Open while there is nothing to read (an idle connection the server closed reads
    /// its end; one with unread bytes is out of step).
    fn is_open(&mut self) -> bool {
        matches!(self.stream.peek(&mut [0]), Err(error) if error.kind() == io::ErrorKind::WouldBlock)
    }
}
