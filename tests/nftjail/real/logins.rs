//! Failed logins over the wire, one connection each, as a password-guessing bot makes them:
//! IMAP `LOGIN`, POP3 `USER`/`PASS`, SMTP `AUTH PLAIN`, FTP `USER`/`PASS`, HTTP basic auth.
//!
//! Receives: a connected stream (from [`super::attacker::Attackers::connect_from`]), a user and
//! a password. Emits: the server's final answer, checked to be a refusal. Never logs in.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use data_encoding::BASE64;

/// A login protocol.
#[derive(Clone, Copy, Debug)]
pub enum Login {
    Imap,
    Pop3,
    /// SMTP AUTH PLAIN after EHLO.
    Smtp,
    Ftp,
    /// `GET PATH` with `Authorization: Basic`.
    Http(&'static str),
}

impl Login {
    /// One failed login on `stream`; returns the server's refusal (panics on anything else,
    /// with the whole conversation).
    pub fn fail(self, stream: TcpStream, user: &str, password: &str) -> String {
        let mut talk = Talk::new(stream);
        let answer = match self {
            Login::Imap => {
                talk.read_until(|l| l.starts_with("* OK"));
                talk.send(&format!("a1 LOGIN {user} {password}"));
                talk.read_until(|l| l.starts_with("a1 "))
            }
            Login::Pop3 => {
                talk.read_until(|l| l.starts_with("+OK"));
                talk.send(&format!("USER {user}"));
                talk.read_until(|l| l.starts_with("+OK") || l.starts_with("-ERR"));
                talk.send(&format!("PASS {password}"));
                talk.read_until(|l| l.starts_with("+OK") || l.starts_with("-ERR"))
            }
            Login::Smtp => {
                talk.read_until(|l| l.starts_with("220 "));
                talk.send("EHLO attacker.example");
                talk.read_until(|l| l.starts_with("250 "));
                let plain = BASE64.encode(format!("\0{user}\0{password}").as_bytes());
                talk.send(&format!("AUTH PLAIN {plain}"));
                talk.read_until(|l| l.len() > 3 && l.as_bytes()[3] == b' ')
            }
            Login::Ftp => {
                talk.read_until(|l| l.starts_with("220 "));
                talk.send(&format!("USER {user}"));
                talk.read_until(|l| l.len() > 3 && l.as_bytes()[3] == b' ');
                talk.send(&format!("PASS {password}"));
                talk.read_until(|l| l.len() > 3 && l.as_bytes()[3] == b' ')
            }
            Login::Http(path) => {
                let basic = BASE64.encode(format!("{user}:{password}").as_bytes());
                talk.send(&format!(
                    "GET {path} HTTP/1.1\r\nHost: mail.example.org\r\nAuthorization: Basic {basic}\r\nConnection: close\r\n"
                ));
                talk.read_until(|l| l.starts_with("HTTP/"))
            }
        };
        let refused = match self {
            Login::Imap => answer.starts_with("a1 NO"),
            Login::Pop3 => answer.starts_with("-ERR"),
            Login::Smtp => answer.starts_with("535"),
            Login::Ftp => answer.starts_with("530"),
            Login::Http(_) => answer.contains(" 401 "),
        };
        assert!(
            refused,
            "{self:?}: not a refused login\n{}",
            talk.transcript
        );
        answer
    }
}

/// A line-based conversation, with its transcript for failure messages.
struct Talk {
    reader: BufReader<TcpStream>,
    transcript: String,
}

impl Talk {
    fn new(stream: TcpStream) -> Talk {
        Talk {
            reader: BufReader::new(stream),
            transcript: String::new(),
        }
    }

    fn send(&mut self, line: &str) {
        self.transcript.push_str(&format!("> {line}\n"));
        let stream = self.reader.get_mut();
        stream.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    }

    /// Reads lines until one satisfies `done` (returned, without its line end).
    fn read_until(&mut self, done: impl Fn(&str) -> bool) -> String {
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap_or_else(|e| {
                panic!("reading the server's answer: {e}\n{}", self.transcript)
            });
            assert!(
                n > 0,
                "the server closed the connection\n{}",
                self.transcript
            );
            let line = line.trim_end().to_string();
            self.transcript.push_str(&format!("< {line}\n"));
            if done(&line) {
                return line;
            }
        }
    }
}
