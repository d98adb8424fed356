//! The threads that call Python for the runtime: sync step handlers, and
//! the callbacks of operations started with `callback=`. Never a runtime
//! worker (whose other executions would wait on the GIL).
//!
//! Like tokio's blocking pool (a thread per call in flight, made on
//! demand, ended after [`KEEP_ALIVE`] idle), with two differences that
//! make a call cheap:
//!
//! - a thread is attached to Python once, for its whole life (its thread
//!   state kept, detached while it waits): attaching a thread Python has
//!   never seen makes a thread state, with its frame stack (an `mmap`),
//!   and deletes it again at the end of the call;
//! - a thread that finished a call looks for the next one for up to
//!   [`LOOK_FOR`] before it sleeps (one such thread at a time), yielding
//!   its CPU in between: a step's next call usually comes within that,
//!   and waking a sleeping thread on another CPU costs tens of µs on a
//!   VM whose idle CPUs halt.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// A call into Python.
pub type Job = Box<dyn for<'py> FnOnce(Python<'py>) + Send + 'static>;

/// How long a thread with nothing to do lives on.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// How long a thread that finished a call looks for the next one.
const LOOK_FOR: Duration = Duration::from_micros(100);
/// At most this many threads (calls beyond wait for one to finish).
const MAX_THREADS: usize = 512;

struct Pool {
    state: Mutex<State>,
    wake: Condvar,
    /// Calls queued (read without the lock by the looking thread).
    queued: AtomicUsize,
    /// Whether a thread is looking for a call now.
    looking: AtomicBool,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    threads: usize,
    /// Threads without a call: looking for one, asleep, or in between.
    idle: usize,
    /// Of those, the ones asleep on `wake` and not woken yet.
    asleep: usize,
    /// Wake-ups sent that no thread has woken from yet.
    woken: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
        queued: AtomicUsize::new(0),
        looking: AtomicBool::new(false),
    })
}

/// Run `job` on a caller thread: an idle one (woken if it sleeps), or a
/// new one (up to [`MAX_THREADS`]; beyond, it waits for one to finish).
/// Returns whether an idle thread that is awake takes it at once.
pub fn call(job: Job) -> bool {
    let pool = pool();
    let mut st = pool.state.lock().expect("callers lock");
    st.jobs.push_back(job);
    pool.queued.fetch_add(1, Ordering::Release);
    // The idle threads that are awake take what is queued (each checks
    // the queue before it sleeps); one more is needed when there are
    // more calls than that.
    if st.jobs.len() <= st.idle - st.asleep {
        return true;
    }
    if st.asleep > 0 {
        st.asleep -= 1;
        st.woken += 1;
        pool.wake.notify_one();
        return false;
    }
    if st.threads < MAX_THREADS {
        st.threads += 1;
        drop(st);
        if std::thread::Builder::new().name("jamjet-python".into()).spawn(run).is_err() {
            pool.state.lock().expect("callers lock").threads -= 1;
        }
    }
    false
}

/// A caller thread: attached to Python for its whole life, detached (the
/// GIL released) while it waits for a call.
fn run() {
    Python::attach(|py| {
        while let Some(job) = py.detach(next) {
            // A job answers its own failures; a panic must not end the
            // thread uncounted.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(py)));
        }
    });
}

/// The next call for this thread; `None`: it was idle for [`KEEP_ALIVE`]
/// and ends.
fn next() -> Option<Job> {
    let pool = pool();
    pool.state.lock().expect("callers lock").idle += 1;
    if !pool.looking.swap(true, Ordering::AcqRel) {
        let until = Instant::now() + LOOK_FOR;
        let found = loop {
            if pool.queued.load(Ordering::Acquire) > 0
                && let Some(job) = take(pool, &mut pool.state.lock().expect("callers lock"))
            {
                break Some(job);
            }
            if Instant::now() >= until {
                break None;
            }
            std::thread::yield_now();
        };
        pool.looking.store(false, Ordering::Release);
        if found.is_some() {
            return found;
        }
    }
    let mut st = pool.state.lock().expect("callers lock");
    loop {
        if let Some(job) = take(pool, &mut st) {
            return Some(job);
        }
        st.asleep += 1;
        let (guard, timeout) = pool.wake.wait_timeout(st, KEEP_ALIVE).expect("callers lock");
        st = guard;
        // Woken (or not, whichever thread wakes first takes the wake-up:
        // `asleep` stays the sleepers no wake-up is on its way to).
        if st.woken > 0 {
            st.woken -= 1;
        } else {
            st.asleep -= 1;
        }
        if timeout.timed_out() && st.jobs.is_empty() {
            st.idle -= 1;
            st.threads -= 1;
            return None;
        }
    }
}

/// The oldest queued call (this thread is busy again).
fn take(pool: &Pool, st: &mut State) -> Option<Job> {
    let job = st.jobs.pop_front()?;
    pool.queued.fetch_sub(1, Ordering::Release);
    st.idle -= 1;
    Some(job)
}
