//! What the private-subdomain targets (`pvt_name`, `pvt_encr`, `pvt_sig0`) share: three fixed
//! key pairs, made once from constant seeds, and the zones they seal and sign for.

use std::sync::LazyLock;

use super::Cursor;
use crate::frontend::pvt::keys::KeyPair;

/// The user's zone `alice._pvt.example.test.`, wire form: the AAD of every seal and the signer
/// of every SIG(0) in the targets.
pub const USER_ZONE: &[u8] = b"\x05alice\x04_pvt\x07example\x04test\x00";
/// Another user's zone: nothing sealed or signed for `USER_ZONE` is good for it.
pub const OTHER_ZONE: &[u8] = b"\x03bob\x04_pvt\x07example\x04test\x00";

/// The gateway's key, the user's, and a stranger's.
pub struct Keys {
    pub provider: KeyPair,
    pub user: KeyPair,
    pub stranger: KeyPair,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let pair = |byte: u8| KeyPair::from_seed(&[byte; 32]).expect("a constant seed makes a key");
    let keys = Keys { provider: pair(0x70), user: pair(0x75), stranger: pair(0x73) };
    let tags = [keys.provider.public.tag, keys.user.public.tag, keys.stranger.public.tag];
    assert!(tags[0] != tags[1] && tags[1] != tags[2] && tags[0] != tags[2], "three key tags");
    keys
});

pub fn keys() -> &'static Keys {
    &KEYS
}

/// How `pvt_encr` and `pvt_sig0` read an input: its first byte even, the rest (its first `max`
/// octets) is bytes as received; odd, a recipe to make something from, that byte its flags.
pub enum Input<'a> {
    Received(&'a [u8]),
    Recipe(u8, Cursor<'a>),
}

pub fn input(data: &[u8], max: usize) -> Input<'_> {
    let mut input = Cursor::new(data);
    let mode = input.u8();
    if mode & 1 == 0 {
        let rest = input.rest();
        Input::Received(&rest[..rest.len().min(max)])
    } else {
        Input::Recipe(mode, input)
    }
}
