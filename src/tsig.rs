//! TSIG (RFC 8945) for the dynamic UPDATEs dotgate sends a primary server (`dotgate dnsenc
//! publish`, and the private-subdomain gateway's UPDATEs and transfers): the key file BIND's
//! `tsig-keygen` writes, the MAC a request carries, and the check of the MAC on the answer (so
//! that a forged "NOERROR" cannot make the operator believe a change is made).
//!
//! Hand-written on aws-lc-rs's HMAC: one record with fixed fields. It came before hickory-proto
//! was a dependency; one TSIG in the binary is kept rather than two. Tested against a real BIND
//! (tests/dnsenc_publish.rs: a right key is approved, a wrong secret gets BADSIG; tests/pvt.rs).
//!
//! Never: logs or prints the secret; accepts an answer whose MAC does not verify.

use std::path::Path;

use aws_lc_rs::hmac;
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::config::ConfigError;
use crate::message;

pub const TYPE_TSIG: u16 = 250;
const CLASS_ANY: u16 = 255;
/// Seconds of clock difference the server may allow (RFC 8945 §10: 300 recommended).
pub const FUDGE: u16 = 300;

/// A TSIG key: its name and algorithm (wire form, lowercased) and its secret.
pub struct TsigKey {
    pub name: Vec<u8>,
    algorithm_name: Vec<u8>,
    key: hmac::Key,
    /// Kept only to say which algorithm in messages.
    pub algorithm: &'static str,
    _secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &crate::dns::display_name(&self.name))
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

pub fn read_key_file(path: &Path) -> Result<TsigKey, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Cli(format!("cannot read --tsig-key {}: {e}", path.display())))?;
    parse_key_file(&text).map_err(|e| ConfigError::Cli(format!("--tsig-key {}: {e}", path.display())))
}

/// A BIND key statement, as `tsig-keygen` writes it:
/// `key "NAME" { algorithm hmac-sha256; secret "BASE64"; };` (the first one in the text;
/// `#`, `//` and `/* */` comments allowed).
pub fn parse_key_file(text: &str) -> Result<TsigKey, String> {
    let text = strip_comments(text);
    let words: Vec<&str> =
        text.split(|c: char| c.is_whitespace() || matches!(c, '{' | '}' | ';')).filter(|w| !w.is_empty()).collect();
    let at = words.iter().position(|w| *w == "key").ok_or("no `key \"NAME\" { ... };` statement in it")?;
    let name = words.get(at + 1).ok_or("the key statement has no name")?.trim_matches('"');
    let value = |field: &str| words[at..].windows(2).find(|w| w[0] == field).map(|w| w[1].trim_matches('"'));
    let algorithm = value("algorithm").ok_or("the key has no `algorithm`")?.to_ascii_lowercase();
    let secret = value("secret").ok_or("the key has no `secret`")?;
    let secret = Zeroizing::new(
        base64::engine::general_purpose::STANDARD.decode(secret).map_err(|_| "the secret is not base64".to_owned())?,
    );
    let (hmac_algorithm, algorithm) = match algorithm.as_str() {
        "hmac-sha256" => (hmac::HMAC_SHA256, "hmac-sha256"),
        "hmac-sha384" => (hmac::HMAC_SHA384, "hmac-sha384"),
        "hmac-sha512" => (hmac::HMAC_SHA512, "hmac-sha512"),
        other => return Err(format!("algorithm {other:?}: use hmac-sha256, hmac-sha384 or hmac-sha512")),
    };
    if secret.is_empty() {
        return Err("the secret is empty".to_owned());
    }
    let name =
        crate::frontend::dnsenc::wire::name_from_text(name.as_bytes()).map_err(|e| format!("the key name: {e}"))?;
    let algorithm_name = crate::frontend::dnsenc::wire::name_from_text(algorithm.as_bytes()).expect("a fixed name");
    Ok(TsigKey {
        name: name.to_ascii_lowercase(),
        algorithm_name,
        key: hmac::Key::new(hmac_algorithm, &secret),
        algorithm,
        _secret: secret,
    })
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |end| &after[end + 2..]);
        } else if rest.starts_with('#') || rest.starts_with("//") {
            rest = rest.find('\n').map_or("", |end| &rest[end..]);
        } else if let Some(after) = rest.strip_prefix('"') {
            // Quoted strings are copied whole (a secret may hold "//").
            let end = after.find('"').map_or(after.len(), |e| e + 1);
            out.push('"');
            out.push_str(&after[..end]);
            rest = &after[end..];
        } else {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The TSIG variables a MAC covers after the message (RFC 8945 §4.3.3): the key name, class
/// ANY, TTL 0, the algorithm, time signed, fudge, error and other data.
fn variables(key: &TsigKey, time: u64, fudge: u16, error: u16, other: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&key.name);
    out.extend_from_slice(&CLASS_ANY.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&key.algorithm_name);
    out.extend_from_slice(&time.to_be_bytes()[2..]);
    out.extend_from_slice(&fudge.to_be_bytes());
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(&(other.len() as u16).to_be_bytes());
    out.extend_from_slice(other);
}

/// Signs `msg` (a whole request, header counts as sent) at `time` (seconds since 1970): appends
/// the TSIG record and counts it in ARCOUNT. Returns the MAC, which the answer's MAC covers.
pub fn sign(key: &TsigKey, msg: &mut Vec<u8>, time: u64) -> Vec<u8> {
    let mut input = msg.clone();
    variables(key, time, FUDGE, 0, &[], &mut input);
    let mac = hmac::sign(&key.key, &input).as_ref().to_vec();
    let id = [msg[0], msg[1]];
    let arcount = u16::from_be_bytes([msg[10], msg[11]]) + 1;
    msg[10..12].copy_from_slice(&arcount.to_be_bytes());
    let mut rdata = key.algorithm_name.clone();
    rdata.extend_from_slice(&time.to_be_bytes()[2..]);
    rdata.extend_from_slice(&FUDGE.to_be_bytes());
    rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rdata.extend_from_slice(&mac);
    rdata.extend_from_slice(&id);
    rdata.extend_from_slice(&[0, 0, 0, 0]);
    msg.extend_from_slice(&key.name);
    msg.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    msg.extend_from_slice(&CLASS_ANY.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    msg.extend_from_slice(&rdata);
    mac
}

/// Checks the TSIG record that ends `response` against the request's MAC (RFC 8945 §5.3): the
/// key and algorithm are the request's, the MAC verifies, and the server's TSIG error is 0.
/// The error names what the server said (BADSIG, BADKEY, BADTIME) or what is wrong.
pub fn verify_response(key: &TsigKey, request_mac: &[u8], response: &[u8]) -> Result<(), String> {
    let parsed = message::parse(response);
    if let Some(why) = parsed.stopped {
        return Err(format!("the answer does not parse: {why}"));
    }
    let tsig = match parsed.sections[2].last() {
        Some(record) if record.rtype == TYPE_TSIG => record,
        _ => return Err("the answer is not signed (no TSIG record): it cannot be trusted".to_owned()),
    };
    if tsig.owner.to_ascii_lowercase() != key.name {
        return Err("the answer is signed with another key".to_owned());
    }
    let rdata = &response[tsig.rdata.0..tsig.rdata.1];
    let bad = || "the answer's TSIG record does not parse".to_owned();
    let (algorithm, after) = message::read_name(rdata, 0).ok_or_else(bad)?;
    let fixed = rdata.get(after..after + 10).ok_or_else(bad)?;
    let time = u64::from_be_bytes([0, 0, fixed[0], fixed[1], fixed[2], fixed[3], fixed[4], fixed[5]]);
    let mac_len = usize::from(message::be16(fixed, 8));
    let mac = rdata.get(after + 10..after + 10 + mac_len).ok_or_else(bad)?;
    let tail = rdata.get(after + 10 + mac_len..).ok_or_else(bad)?;
    if tail.len() < 6 {
        return Err(bad());
    }
    let (original_id, error, other_len) =
        (message::be16(tail, 0), message::be16(tail, 2), usize::from(message::be16(tail, 4)));
    match error {
        0 => {}
        16 => return Err("the server says the request's MAC is wrong (BADSIG): is it the same secret?".to_owned()),
        17 => return Err("the server does not know the key (BADKEY): is the key name right?".to_owned()),
        18 => return Err("the server says the clocks differ by more than 300 s (BADTIME)".to_owned()),
        other => return Err(format!("the server answered TSIG error {other}")),
    }
    if algorithm.to_ascii_lowercase() != key.algorithm_name {
        return Err("the answer is signed with another algorithm".to_owned());
    }
    let mut input = Vec::with_capacity(response.len() + 2 + request_mac.len());
    input.extend_from_slice(&(request_mac.len() as u16).to_be_bytes());
    input.extend_from_slice(request_mac);
    let mut unsigned = response[..tsig.start].to_vec();
    unsigned[..2].copy_from_slice(&original_id.to_be_bytes());
    let arcount = message::be16(&unsigned, 10) - 1;
    unsigned[10..12].copy_from_slice(&arcount.to_be_bytes());
    input.extend_from_slice(&unsigned);
    let other = tail.get(6..6 + other_len).ok_or_else(bad)?;
    variables(key, time, message::be16(fixed, 6), error, other, &mut input);
    hmac::verify(&key.key, &input, mac).map_err(|_| "the answer's TSIG MAC does not verify".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "# made by tsig-keygen\nkey \"upd\" {\n\talgorithm hmac-sha256;\n\tsecret \"TEm1nZZGRP7litSKfrfLsLjme57yQqidRVjMok6JtWc=\";\n};\n";

    #[test]
    fn key_files_parse_as_tsig_keygen_writes_them() {
        let key = parse_key_file(KEY).unwrap();
        assert_eq!(key.name, b"\x03upd\x00");
        assert_eq!(key.algorithm, "hmac-sha256");
        assert!(!format!("{key:?}").contains("TEm1"), "the secret never shows");
        for (bad, why) in [
            ("", "no `key"),
            ("key \"k\" { secret \"AAAA\"; };", "no `algorithm`"),
            ("key \"k\" { algorithm hmac-sha256; };", "no `secret`"),
            ("key \"k\" { algorithm hmac-md5; secret \"AAAA\"; };", "hmac-md5"),
            ("key \"k\" { algorithm hmac-sha256; secret \"!!\"; };", "not base64"),
        ] {
            let err = parse_key_file(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let commented = "/* key \"old\" { algorithm hmac-sha512; secret \"AAAA\"; }; */ // note\n".to_owned() + KEY;
        assert_eq!(parse_key_file(&commented).unwrap().name, b"\x03upd\x00");
    }

    /// A request signed here and an answer signed as a server signs it (the same MAC over the
    /// request's MAC, the answer and the variables) verify; a changed byte or the wrong request
    /// MAC does not.
    #[test]
    fn an_answer_verifies_only_with_its_request_mac_and_unchanged() {
        let key = parse_key_file(KEY).unwrap();
        let mut request = vec![0x12, 0x34, 0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1];
        let mac = sign(&key, &mut request, 1_790_000_000);
        assert_eq!(message::be16(&request, 10), 1);
        assert!(message::parse(&request).stopped.is_none());
        // The server's answer: header with QR, then its TSIG over (request MAC, answer, vars).
        let answer = vec![0x12, 0x34, 0xa8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1];
        let mut input = (mac.len() as u16).to_be_bytes().to_vec();
        input.extend_from_slice(&mac);
        input.extend_from_slice(&answer);
        variables(&key, 1_790_000_001, FUDGE, 0, &[], &mut input);
        let answer_mac = hmac::sign(&key.key, &input).as_ref().to_vec();
        let mut signed = answer.clone();
        signed[11] = 1;
        signed.extend_from_slice(&key.name);
        signed.extend_from_slice(&TYPE_TSIG.to_be_bytes());
        signed.extend_from_slice(&CLASS_ANY.to_be_bytes());
        signed.extend_from_slice(&0u32.to_be_bytes());
        let mut rdata = key.algorithm_name.clone();
        rdata.extend_from_slice(&1_790_000_001u64.to_be_bytes()[2..]);
        rdata.extend_from_slice(&FUDGE.to_be_bytes());
        rdata.extend_from_slice(&(answer_mac.len() as u16).to_be_bytes());
        rdata.extend_from_slice(&answer_mac);
        rdata.extend_from_slice(&[0x12, 0x34, 0, 0, 0, 0]);
        signed.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        signed.extend_from_slice(&rdata);
        verify_response(&key, &mac, &signed).unwrap();
        assert!(verify_response(&key, &[0; 32], &signed).unwrap_err().contains("does not verify"));
        let mut changed = signed.clone();
        changed[3] = 5;
        assert!(verify_response(&key, &mac, &changed).is_err());
        assert!(verify_response(&key, &mac, &answer).unwrap_err().contains("not signed"));
    }
}
