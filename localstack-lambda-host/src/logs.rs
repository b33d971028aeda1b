//! What the function writes (stdout and stderr share one pipe, so their order is kept), collected
//! between two reports to LocalStack, as LocalStack's runtime-init collects it: everything since
//! the last invocation's logs were sent goes with the next one (init output goes with the first).

use std::sync::Mutex;

/// Output collected since the last [`LogCollector::take`], at most `cap` bytes.
#[derive(Debug)]
pub struct LogCollector {
    inner: Mutex<Collected>,
    cap: usize,
}

#[derive(Debug, Default)]
struct Collected {
    text: String,
    dropped: usize,
}

impl LogCollector {
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Mutex::new(Collected::default()),
            cap,
        }
    }

    /// Adds output; what does not fit (and everything after it) is counted and dropped.
    pub fn push(&self, chunk: &str) {
        let Ok(mut c) = self.inner.lock() else {
            return;
        };
        // Once something was dropped, later output is dropped too, so what is kept has no gap.
        let room = if c.dropped > 0 {
            0
        } else {
            self.cap.saturating_sub(c.text.len())
        };
        if chunk.len() <= room {
            c.text.push_str(chunk);
        } else {
            let mut cut = room;
            while cut > 0 && !chunk.is_char_boundary(cut) {
                cut -= 1;
            }
            c.text.push_str(&chunk[..cut]);
            c.dropped += chunk.len() - cut;
        }
    }

    /// Everything collected so far, emptying the collector. A note ends it when output was
    /// dropped.
    pub fn take(&self) -> String {
        let Ok(mut c) = self.inner.lock() else {
            return String::new();
        };
        let mut text = std::mem::take(&mut c.text);
        if c.dropped > 0 {
            if !text.ends_with('\n') && !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&format!(
                "[switchboard-localstack-lambda-host: {} bytes of output dropped]\n",
                c.dropped
            ));
            c.dropped = 0;
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_empties_and_keeps_order() {
        let logs = LogCollector::new(1024);
        logs.push("a\n");
        logs.push("b\n");
        assert_eq!(logs.take(), "a\nb\n");
        assert_eq!(logs.take(), "");
    }

    #[test]
    fn overflow_is_dropped_with_a_note_on_a_char_boundary() {
        let logs = LogCollector::new(5);
        logs.push("abcdé");
        logs.push("more");
        let text = logs.take();
        assert!(text.starts_with("abcd\n"), "{text}");
        assert!(text.contains("6 bytes of output dropped"), "{text}");
    }
}
